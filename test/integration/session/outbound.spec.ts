// The owner's sender on the real MongoDB-wire server, with an engine whose send fails after handing the
// message over (what WhatsApp Web can do, and no engine here does on demand): the key's record ends
// `failed`, a repeat answers the same error without sending again, and a refusal before sending
// (INVALID_STATE) releases the key instead; a send queued when its owner loses the workspace, or
// resumed by the next owner and refused, stays queued and is sent once. A send without a key whose slot
// comes only after its deadline is not handed to the engine (its slot left unused); a keyed one is not
// held to it (a retry with its key answers its result).
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { Errors } from "moleculer";
import { MongoClient, type Db } from "mongodb";
import { InvalidStateError, SendInterruptedError } from "../../../src/errors.ts";
import { checkSendRequest, requestDigest } from "../../../src/messages/validate.ts";
import type { OutboundMessage, OwnerSend } from "../../../src/messages/types.ts";
import { OutboundSender } from "../../../src/session/outbound.ts";
import { FREE_SLOT, type PaceSlot } from "../../../src/session/send-pacing.ts";
import { IdempotencyRepo } from "../../../src/store/idempotency-repo.ts";
import { MessageStatusRepo } from "../../../src/store/message-status-repo.ts";
import { OutboundMediaStore } from "../../../src/store/outbound-media.ts";
import { mongoUrlFor } from "../../support/env.ts";
import { waitFor } from "../../support/wait.ts";

describe("session/outbound: engine failures and idempotency records", function () {
  this.timeout(30000);
  let client: MongoClient;
  let db: Db;
  let engineCalls: OutboundMessage[];
  let engineError: Error | null;

  beforeEach(async () => {
    client = await MongoClient.connect(mongoUrlFor(`outb${randomBytes(3).toString("hex")}`));
    db = client.db();
    engineCalls = [];
    engineError = null;
  });
  afterEach(async () => {
    await db.dropDatabase().finally(() => client.close());
  });

  function sender(
    opts: { fence?: () => { node: string; epoch: number } | null; pace?: () => Promise<PaceSlot> } = {},
  ): OutboundSender {
    return new OutboundSender({
      idempotency: new IdempotencyRepo(db, 3600_000),
      statuses: new MessageStatusRepo(db, 3600_000),
      media: new OutboundMediaStore(db),
      fetchMedia: async () => {
        throw new Error("no media in this spec");
      },
      fence: opts.fence ?? (() => ({ node: "n1", epoch: 1 })),
      pace: opts.pace,
      engineSend: async (_accountId, message) => {
        engineCalls.push(message);
        if (engineError) throw engineError;
        return { id: `true_${engineCalls.length}` };
      },
      logger: { warn: () => undefined },
    });
  }

  function request(key: string, text = "hello"): OwnerSend {
    const { draft } = checkSendRequest({ to: "4915100000002", text }, { mediaMaxBytes: 1 });
    return { workspaceId: "ws", accountId: "acc_1", draft, key, digest: requestDigest(draft, null) };
  }

  it("an engine failure after handing over: `failed`, and a repeat answers the same error, unsent", async () => {
    engineError = new Errors.MoleculerError("Evaluation failed: chat not found", 502, "ENGINE_SEND_FAILED");
    const s = sender();
    await assert.rejects(s.send(request("k1")), { type: "ENGINE_SEND_FAILED" });
    const rec = await db.collection("idempotency").findOne({ _id: "acc_1|k1" as never });
    assert.deepEqual([rec?.state, rec?.error?.type, rec?.error?.code], ["failed", "ENGINE_SEND_FAILED", 502]);
    engineError = null;
    await assert.rejects(s.send(request("k1")), (err: Errors.MoleculerError) => {
      assert.equal(err.type, "ENGINE_SEND_FAILED");
      assert.equal(err.code, 502);
      assert.deepEqual(err.data, { idempotencyKey: "k1", duplicate: true });
      return true;
    });
    assert.equal(engineCalls.length, 1, "not sent again");
  });

  it("a refusal before sending (INVALID_STATE) releases the key: the next try sends", async () => {
    engineError = new InvalidStateError("Cannot send a message: the session is disconnected");
    const s = sender();
    await assert.rejects(s.send(request("k2")), { type: "INVALID_STATE" });
    assert.equal(await db.collection("idempotency").countDocuments(), 0);
    engineError = null;
    const ok = await s.send(request("k2"));
    assert.deepEqual([ok.status, ok.id], ["sent", "true_2"]);
    const again = await s.send(request("k2"));
    assert.deepEqual([again.id, again.at, again.duplicate], [ok.id, ok.at, true]);
    assert.equal(engineCalls.length, 2);
  });

  /** An owner that loses the workspace while a send waits for its slot (its lease lapsed meanwhile). */
  function losingOwner(): OutboundSender {
    let owned = true;
    return sender({
      fence: () => (owned ? { node: "n1", epoch: 1 } : null),
      pace: async () => {
        owned = false;
        return FREE_SLOT;
      },
    });
  }

  it("the workspace lost while a send waits for its slot: `recorded` with its media, sent once by the next owner", async () => {
    const media = new OutboundMediaStore(db);
    const mediaId = await media.put(Buffer.from("%PDF-1.4 a document"));
    const source = { kind: "stored" as const, mediaId, mimetype: "application/pdf", size: 19 };
    const p: OwnerSend = {
      workspaceId: "ws",
      accountId: "acc_1",
      draft: { to: "4915100000002", type: "document" },
      media: source,
      key: "k3",
      digest: "d3",
    };
    await assert.rejects(losingOwner().send(p), { type: "WORKSPACE_UNAVAILABLE" });
    const rec = await db.collection("idempotency").findOne({ _id: "acc_1|k3" as never });
    assert.equal(rec?.state, "recorded", "still queued");
    assert.ok(await media.get(mediaId), "its document kept");
    assert.equal(engineCalls.length, 0);

    const next = sender({ fence: () => ({ node: "n2", epoch: 2 }) });
    assert.equal(await next.resume("acc_1"), 1);
    await waitFor(
      async () =>
        (await db.collection("idempotency").findOne({ _id: "acc_1|k3" as never }))?.state === "sent",
      {
        what: "the next owner to send it",
      },
    );
    assert.equal(engineCalls.length, 1);
    assert.equal(engineCalls[0]!.type, "document");
    // Deleted once the send is over (after its record says `sent`).
    await waitFor(async () => (await media.get(mediaId)) === null, {
      what: "its document deleted once sent",
    });
  });

  it("a resumed send the engine refuses (INVALID_STATE) stays queued for the next `connected`", async () => {
    await assert.rejects(losingOwner().send(request("k4")), { type: "WORKSPACE_UNAVAILABLE" });
    engineError = new InvalidStateError("Cannot send a message: the session is disconnected");
    const next = sender({ fence: () => ({ node: "n2", epoch: 2 }) });
    assert.equal(await next.resume("acc_1"), 1);
    await waitFor(() => engineCalls.length === 1, { what: "the resumed try" });
    await waitFor(
      async () => {
        const rec = await db.collection("idempotency").findOne({ _id: "acc_1|k4" as never });
        return rec?.state === "recorded" && rec.node === "n2";
      },
      { what: "the record queued again" },
    );
    engineError = null;
    assert.equal(await next.resume("acc_1"), 1, "found again at the next connected");
    await waitFor(
      async () =>
        (await db.collection("idempotency").findOne({ _id: "acc_1|k4" as never }))?.state === "sent",
      {
        what: "it sent",
      },
    );
    assert.equal(engineCalls.length, 2);
  });

  it("the engine's browser gone mid-send (SEND_INTERRUPTED): `uncertain`, answered so, never sent again", async () => {
    engineError = new SendInterruptedError("acc_1", "Protocol error: Target closed");
    const s = sender();
    const first = await s.send(request("k5"));
    assert.deepEqual([first.id, first.status, first.error?.type], [null, "uncertain", "SEND_INTERRUPTED"]);
    const rec = await db.collection("idempotency").findOne({ _id: "acc_1|k5" as never });
    assert.equal(rec?.state, "uncertain");
    engineError = null;
    const again = await s.send(request("k5"));
    assert.deepEqual([again.status, again.duplicate], ["uncertain", true]);
    assert.equal(engineCalls.length, 1, "not sent again");
  });

  describe("a send's deadline", () => {
    /** A slot that comes only once `deadline` has passed (a long queue ahead); how it was left goes to
     * `left` (true: handed over). */
    function lateSlot(deadline: number, left: boolean[]): () => Promise<PaceSlot> {
      return async () => {
        await waitFor(() => Date.now() > deadline, { what: "the deadline to pass" });
        let done = false;
        return {
          leave: (handedOver) => {
            if (!done) left.push(handedOver);
            done = true;
          },
        };
      };
    }

    it("without a key, a slot after the deadline: SEND_DEADLINE_EXCEEDED, never handed over", async () => {
      const deadline = Date.now() + 50;
      const left: boolean[] = [];
      const { key: _unused, ...keyless } = request("unused", "late");
      await assert.rejects(sender({ pace: lateSlot(deadline, left) }).send(keyless, { deadline }), {
        type: "SEND_DEADLINE_EXCEEDED",
        code: 504,
      });
      assert.equal(engineCalls.length, 0, "handed to the engine after its deadline");
      assert.deepEqual(left, [false], "the slot is left unused: the next send goes at once");
      assert.equal(await db.collection("message_status").countDocuments(), 0);
    });

    it("with a key the deadline does not hold: sent, and its record answers a retry", async () => {
      const deadline = Date.now() + 50;
      const s = sender({ pace: lateSlot(deadline, []) });
      const first = await s.send(request("kd", "late"), { deadline });
      assert.equal(first.status, "sent");
      assert.equal(engineCalls.length, 1);
      const again = await s.send(request("kd", "late"), { deadline });
      assert.deepEqual(again, { ...first, duplicate: true });
      assert.equal(engineCalls.length, 1);
    });
  });
});
