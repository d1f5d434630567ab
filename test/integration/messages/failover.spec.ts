// Sends interrupted by a real failover: worker PROCESSES (simulated engine), the owner SIGKILLed in the
// middle of a send with an idempotency key, and the same request retried until a survivor answers.
//  - killed while fetching the media URL (record `recorded`, engine never called): the survivor sends
//    it, once;
//  - killed while its engine sends (record `sending`, SIMULATED_SEND_MS long): `uncertain`, and the
//    survivor does not send it again;
//  - killed with keyed sends queued behind the pacing gap: the survivor sends them once the account is
//    connected there, without being asked again;
//  - 200 keyed sends over 20 chats, each request made twice, the owner killed in the middle of them:
//    every key ends sent or uncertain, nothing is sent twice, each chat's messages go in order, and the
//    survivor's sends get their receipts.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { MongoClient, type Db } from "mongodb";
import type { ServiceBroker } from "moleculer";
import AccountsService from "../../../services/accounts.service.ts";
import type { SendResult } from "../../../src/messages/types.ts";
import { placementOf } from "../../../src/placement/kv.ts";
import type { IdempotencyDoc } from "../../../src/store/idempotency-repo.ts";
import { ProcessCluster } from "../../support/process-cluster.ts";
import { waitFor } from "../../support/wait.ts";
import {
  connectedAccounts,
  knowsRecorder,
  recorder,
  workspacesOn,
  type Recorded,
} from "../placement/failover-support.ts";

const PDF = Buffer.from("%PDF-1.4 failover");

describe("messages: a send interrupted by the owner's SIGKILL", function () {
  this.timeout(120000);
  let pc: ProcessCluster;
  let obs: ServiceBroker;
  let mongo: MongoClient;
  let db: Db;
  let media: Server;
  let mediaUrl: string;
  /** Requests for /held.pdf wait here until answered. */
  const held: ServerResponse[] = [];
  let holdRequests = true;
  let mediaRequests = 0;
  const events: Recorded[] = [];
  const savedAllow = process.env.WEBHOOK_ALLOW_PRIVATE;

  beforeEach(async function () {
    this.timeout(120000);
    media = createServer((req, res) => {
      mediaRequests++;
      if (holdRequests) held.push(res);
      else res.writeHead(200, { "content-type": "application/pdf" }).end(PDF);
    });
    await new Promise<void>((r) => media.listen(0, "127.0.0.1", r));
    mediaUrl = `http://127.0.0.1:${(media.address() as AddressInfo).port}/held.pdf`;
    // The observer runs `accounts`, which checks media URLs against its own (env-read) policy.
    process.env.WEBHOOK_ALLOW_PRIVATE = "127.0.0.1";
    pc = new ProcessCluster({
      WEBHOOK_ALLOW_PRIVATE: "127.0.0.1",
      // Long enough to kill the owner mid-send; the burst test wants sends quick but not instant.
      SIMULATED_SEND_MS: this.currentTest?.title.includes("200 keyed") ? "40" : "4000",
      // The queue test: sends wait for their account's slot long enough to kill the owner meanwhile.
      ...(this.currentTest?.title.includes("queued")
        ? { SEND_MIN_GAP_MS: "1500", SIMULATED_SEND_MS: "0" }
        : {}),
      SIMULATED_ACK_MS: "50",
    });
    await pc.startServers();
    await Promise.all(["w1", "w2"].map((id) => pc.startWorker(id)));
    obs = await pc.observer("obs", [AccountsService, recorder(events)]);
    await waitFor(
      () => {
        const live = placementOf(obs)?.mirror.liveNodes();
        return ["w1", "w2"].every((n) => live?.has(n) && obs.registry.nodes.get(n)?.available);
      },
      { what: "both workers live", timeoutMs: 30000 },
    );
    // Their broadcasts must reach the recorder here before the test counts on them.
    await waitFor(
      async () => (await Promise.all(["w1", "w2"].map((n) => knowsRecorder(obs, n)))).every(Boolean),
      {
        what: "both workers to know the recorder",
        timeoutMs: 30000,
        intervalMs: 200,
      },
    );
    mongo = await MongoClient.connect(pc.mongoUrl);
    db = mongo.db();
  });

  afterEach(async function () {
    this.timeout(60000);
    for (const res of held.splice(0)) res.destroy();
    holdRequests = true;
    mediaRequests = 0;
    events.splice(0);
    await mongo?.close();
    await pc?.stop();
    await new Promise((r) => media.close(r));
    if (savedAllow === undefined) delete process.env.WEBHOOK_ALLOW_PRIVATE;
    else process.env.WEBHOOK_ALLOW_PRIVATE = savedAllow;
  });

  /** A connected account in a workspace owned by w1, and a recipient no other test uses. */
  async function accountOnW1() {
    const [ws] = await workspacesOn(obs, "w1", 1, `fo${randomBytes(3).toString("hex")}`);
    const [account] = await connectedAccounts(obs, events, [ws], 1);
    return { ws, account, to: `49170${String(Date.now()).slice(-7)}` };
  }

  const record = (accountId: string, key: string) =>
    db.collection<IdempotencyDoc>("idempotency").findOne({ _id: `${accountId}|${key}` });

  /** The same request again and again until an owner answers it (the workspace is failing over). */
  function retry(params: object): Promise<SendResult> {
    return waitFor(
      async () => (await obs.call("accounts.sendMessage", params, { timeout: 8000 })) as SendResult,
      { what: "a survivor to answer the retry", timeoutMs: 60000, intervalMs: 250 },
    );
  }

  it("killed after the record, before its engine was called: the survivor sends it once", async () => {
    const { ws, account, to } = await accountOnW1();
    const key = `k-${randomBytes(4).toString("hex")}`;
    const params = {
      workspaceId: ws,
      accountId: account.id,
      to,
      type: "document",
      media: { url: mediaUrl },
      idempotencyKey: key,
    };
    const first = obs.call("accounts.sendMessage", params).catch((err: Error) => err);
    await waitFor(async () => held.length === 1 && (await record(account.id, key))?.state === "recorded", {
      what: "w1 to record the key and fetch the media",
    });
    // Only w1's fetch hangs: the survivor's is answered (it may fetch before the retry, resuming the
    // account's queued sends once the account is connected there).
    holdRequests = false;
    pc.kill("w1", "SIGKILL");
    assert.ok((await first) instanceof Error, "the first request failed with its owner");
    const res = await retry(params);
    assert.equal(res.status, "sent");
    const rec = await record(account.id, key);
    assert.deepEqual([rec?.state, rec?.messageId, rec?.node], ["sent", res.id, "w2"]);
    assert.equal(await db.collection("message_status").countDocuments({ to }), 1, "sent exactly once");
    assert.equal(mediaRequests, 2);
    const again = await retry(params);
    assert.deepEqual([again.id, again.duplicate], [res.id, true]);
  });

  it("killed while its engine was sending: `uncertain`, never sent again by the survivor", async () => {
    const { ws, account, to } = await accountOnW1();
    const key = `k-${randomBytes(4).toString("hex")}`;
    const params = { workspaceId: ws, accountId: account.id, to, text: "mid-send", idempotencyKey: key };
    const first = obs.call("accounts.sendMessage", params).catch((err: Error) => err);
    await waitFor(async () => (await record(account.id, key))?.state === "sending", {
      what: "w1 to hand the message to its engine",
    });
    pc.kill("w1", "SIGKILL");
    assert.ok((await first) instanceof Error);
    const res = await retry(params);
    assert.deepEqual([res.status, res.id, res.error?.type], ["uncertain", null, "OWNER_LOST_MID_SEND"]);
    const again = await retry(params);
    assert.equal(again.status, "uncertain");
    assert.equal(await db.collection("message_status").countDocuments({ to }), 0, "not sent by the survivor");
  });

  it("sends queued behind the pacing gap when the owner dies are sent by the next owner, unasked, once each, in order", async () => {
    const { ws, account, to } = await accountOnW1();
    const keys = ["q0", "q1", "q2", "q3"].map((k) => `${k}-${randomBytes(3).toString("hex")}`);
    const params = (i: number) => ({
      workspaceId: ws,
      accountId: account.id,
      to,
      text: `queued ${i}`,
      idempotencyKey: keys[i],
    });
    // The first goes at once; the others wait for their slots, recorded.
    const first = (await obs.call("accounts.sendMessage", params(0))) as SendResult;
    assert.equal(first.status, "sent");
    // Asked one after another: each is queued (recorded) before the next is asked.
    const waiting: Promise<unknown>[] = [];
    for (const i of [1, 2, 3]) {
      waiting.push(obs.call("accounts.sendMessage", params(i)).catch((err: Error) => err));
      await waitFor(async () => (await record(account.id, keys[i]))?.state === "recorded", {
        what: `w1 to queue send ${i}`,
      });
    }
    pc.kill("w1", "SIGKILL");
    for (const answer of await Promise.all(waiting))
      assert.ok(answer instanceof Error, "answered by a dead owner");
    // Nobody asks again: w2 sends them once the account is connected there.
    await waitFor(
      async () => {
        const recs = await Promise.all([1, 2, 3].map((i) => record(account.id, keys[i])));
        return recs.every((r) => r?.state === "sent" && r.node === "w2");
      },
      { what: "w2 to send the queued sends", timeoutMs: 30000, intervalMs: 200 },
    );
    const sent = await db.collection("message_status").find({ to }).toArray();
    assert.equal(sent.length, 4, "each sent once");
    const recs = await Promise.all([1, 2, 3].map((i) => record(account.id, keys[i])));
    const at = recs.map((r) => sent.find((d) => d.messageId === r!.messageId)!.sentAt as Date);
    assert.ok(at[0] <= at[1] && at[1] <= at[2], "in the order they were asked");
    // A client that asks again now gets the result, not a second send.
    for (const i of [1, 2, 3]) {
      const again = (await retry(params(i))) as SendResult;
      assert.deepEqual([again.status, again.id, again.duplicate], ["sent", recs[i - 1]!.messageId, true]);
    }
    assert.equal(await db.collection("message_status").countDocuments({ to }), 4);
  });

  it("200 keyed sends over 20 chats, each made twice, the owner killed midway: once each, in order per chat, receipts recorded", async () => {
    const { ws, account } = await accountOnW1();
    const CHATS = 20;
    const PER_CHAT = 10;
    const chatOf = (c: number) => `4917${String(c).padStart(8, "0")}`;
    const params = (c: number, n: number) => ({
      workspaceId: ws,
      accountId: account.id,
      to: chatOf(c),
      text: `chat ${c} message ${n}`,
      idempotencyKey: `burst-${c}-${n}`,
    });
    const answers = new Map<string, SendResult[]>();
    let answered = 0;
    let killed = false;
    /** One chat's client: its messages one after another, each request made twice at once. */
    const chat = async (c: number) => {
      for (let n = 0; n < PER_CHAT; n++) {
        // An answer lost with the owner is retried until one comes.
        const both = await Promise.all(
          [0, 1].map(() =>
            (obs.call("accounts.sendMessage", params(c, n), { timeout: 8000 }) as Promise<SendResult>).catch(
              () => retry(params(c, n)),
            ),
          ),
        );
        answers.set(`${c}-${n}`, both);
        if (++answered === 60 && !killed) {
          killed = true;
          pc.kill("w1", "SIGKILL");
        }
      }
    };
    await Promise.all(Array.from({ length: CHATS }, (_, c) => chat(c)));
    assert.ok(killed);
    const statuses = db.collection("message_status");
    let uncertain = 0;
    const sentByW2: string[] = [];
    for (let c = 0; c < CHATS; c++) {
      const sentIds: string[] = [];
      let chatUncertain = 0;
      for (let n = 0; n < PER_CHAT; n++) {
        const [a, b] = answers.get(`${c}-${n}`)!;
        for (const r of [a, b])
          assert.ok(r.status === "sent" || r.status === "uncertain", `${c}-${n}: ${r.status}`);
        if (a.status === "sent" && b.status === "sent") {
          assert.equal(a.id, b.id, `${c}-${n}: both answers name one message`);
          sentIds.push(a.id!);
          if ((await record(account.id, `burst-${c}-${n}`))?.node === "w2") sentByW2.push(a.id!);
        } else chatUncertain++;
      }
      uncertain += chatUncertain;
      const docs = await statuses.find({ to: chatOf(c) }).toArray();
      // Every key answered `sent` names a message sent to this chat; nothing else was sent to it but
      // (perhaps) the uncertain ones, which the dead owner may have handed to its engine.
      for (const id of sentIds)
        assert.ok(
          docs.some((d) => d.messageId === id),
          `chat ${c}: ${id} answered sent, no status record`,
        );
      assert.ok(docs.length <= sentIds.length + chatUncertain, `chat ${c}: ${docs.length} messages sent`);
      // In the order the client sent them (each after the previous one was answered).
      const sentAt = sentIds.map((id) => docs.find((d) => d.messageId === id)!.sentAt as Date);
      for (let i = 1; i < sentAt.length; i++)
        assert.ok(sentAt[i - 1] <= sentAt[i], `chat ${c}: message ${i} sent before message ${i - 1}`);
    }
    // Uncertain only where the owner died between its engine's send and the result's record.
    assert.ok(uncertain <= 20, `${uncertain} uncertain`);
    // The survivor's sends get their receipts (the dead owner's pending receipts died with it).
    assert.ok(sentByW2.length > 100, `${sentByW2.length} sent by w2`);
    await waitFor(
      async () =>
        (await statuses.countDocuments({ messageId: { $in: sentByW2 }, status: "read" })) === sentByW2.length,
      { what: "every message the survivor sent to be read" },
    );
  });
});
