// The owner's sender and its queue on the real MongoDB-wire server: a queued send keeps its stored media
// as long as its record lives and is sent once its account is connected, waiting its turn however long
// the account's queue (in order); a queue whose read fails at first is read again; a burst of media
// sends holds a bounded number of media at once; an account deleted while its keyed send is under way
// answers 404 (or `uncertain` when the engine was called), never a TypeError.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import type { Errors } from "moleculer";
import { MongoClient, type Db } from "mongodb";
import { SendInterruptedError } from "../../../src/errors.ts";
import type { FetchedMedia } from "../../../src/messages/media-fetch.ts";
import type { MediaSource, OutboundMessage, OwnerSend } from "../../../src/messages/types.ts";
import { OutboundSender, type OutboundDeps } from "../../../src/session/outbound.ts";
import { pruneOutboundMedia } from "../../../src/session/outbound-setup.ts";
import { FREE_SLOT, SendPacer } from "../../../src/session/send-pacing.ts";
import { IdempotencyRepo, type IdempotencyDoc } from "../../../src/store/idempotency-repo.ts";
import { MessageStatusRepo } from "../../../src/store/message-status-repo.ts";
import { OutboundMediaStore } from "../../../src/store/outbound-media.ts";
import { landThenLoseAnswer } from "../../support/answer-lost.ts";
import { mongoUrlFor } from "../../support/env.ts";
import { waitFor } from "../../support/wait.ts";

const PNG = Buffer.concat([Buffer.from("89504e470d0a1a0a", "hex"), Buffer.alloc(64, 7)]);

describe("session/outbound: the queue, its media and its limits", function () {
  this.timeout(30000);
  let client: MongoClient;
  let db: Db;
  let idempotency: IdempotencyRepo;
  let media: OutboundMediaStore;
  let engineCalls: OutboundMessage[];

  beforeEach(async () => {
    client = await MongoClient.connect(mongoUrlFor(`outq${randomBytes(3).toString("hex")}`));
    db = client.db();
    idempotency = new IdempotencyRepo(db, 3600_000);
    media = new OutboundMediaStore(db);
    engineCalls = [];
  });
  afterEach(async () => {
    await db.dropDatabase().finally(() => client.close());
  });

  function sender(deps: Partial<OutboundDeps> = {}): OutboundSender {
    return new OutboundSender({
      idempotency,
      statuses: new MessageStatusRepo(db, 3600_000),
      media,
      fetchMedia: async () => {
        throw new Error("no media URLs here");
      },
      fence: () => ({ node: "n2", epoch: 2 }) as never,
      engineSend: async (_accountId, message) => {
        engineCalls.push(message);
        return { id: `true_${engineCalls.length}` };
      },
      logger: { warn: () => undefined },
      ...deps,
    });
  }

  /** A send a lost owner left queued (`recorded` by an attempt no longer running). */
  async function queued(key: string, text: string, source?: MediaSource): Promise<void> {
    await idempotency.begin({
      workspaceId: "ws",
      accountId: "acc_1",
      key,
      digest: `d_${key}`,
      attempt: `dead_${key}`,
      node: "n1",
      epoch: 1,
      request: source
        ? { draft: { to: "4915100000002", type: "image" }, media: source }
        : { draft: { to: "4915100000002", type: "text", text } },
    });
    // Queued in the order asked (createdAt): the next one a millisecond later at least.
    const at = Date.now();
    await waitFor(() => Date.now() > at, { what: "the next millisecond", intervalMs: 1 });
  }

  /** A gate an engine send waits at until `open`. */
  function gate(): { shut: Promise<void>; open: () => void } {
    let open!: () => void;
    const shut = new Promise<void>((resolve) => (open = resolve));
    return { shut, open };
  }

  const record = (key: string) =>
    db.collection<IdempotencyDoc>("idempotency").findOne({ _id: `acc_1|${key}` });

  describe("stored media of a queued send", () => {
    it("outlives the orphans' hour while its record lives: only unnamed media is pruned, then it is sent", async () => {
      const kept = await media.put(PNG);
      const orphan = await media.put(PNG);
      await queued("k1", "", { kind: "stored", mediaId: kept, mimetype: "image/png", size: PNG.length });
      // What the pruning does once every file is past the orphans' hour.
      const pruned = await pruneOutboundMedia(media, idempotency, new Date(Date.now() + 1000));
      assert.equal(pruned, 1);
      assert.equal(await media.get(orphan), null, "an orphan goes");
      assert.ok(await media.get(kept), "the queued send's media stays");

      assert.equal(await sender().resume("acc_1"), 1);
      await waitFor(async () => (await record("k1"))?.state === "sent", { what: "the queued send sent" });
      assert.deepEqual(engineCalls[0]?.media?.data, PNG);
    });

    it("is read again when the database is briefly busy", async () => {
      const mediaId = await media.put(PNG);
      let failures = 1;
      const busy = new (class extends OutboundMediaStore {
        override async get(id: string): Promise<Buffer | null> {
          if (failures-- > 0) throw new Error("database is locked");
          return super.get(id);
        }
      })(db);
      const res = await sender({ media: busy }).send({
        workspaceId: "ws",
        accountId: "acc_1",
        draft: { to: "4915100000002", type: "image" },
        media: { kind: "stored", mediaId, mimetype: "image/png", size: PNG.length },
        digest: "d",
      });
      assert.equal(res.status, "sent");
      assert.deepEqual(engineCalls[0]?.media?.data, PNG);
    });
  });

  describe("resumed sends", () => {
    it("wait their turn however long the account's queue, and leave in the order they were asked", async () => {
      // Any wait is longer than a request may: a bounded send behind another is refused.
      const pacer = new SendPacer({ minGapMs: 100, maxWaitMs: 0, random: () => 0 });
      (await pacer.turn("acc_1")).leave(true); // a send just left: the next waits the gap
      await assert.rejects(pacer.turn("acc_1"), { type: "SEND_QUEUE_FULL" });
      await queued("k1", "first");
      await queued("k2", "second");
      const s = sender({ pace: (accountId, opts) => pacer.turn(accountId, Date.now(), opts) });
      assert.equal(await s.resume("acc_1"), 2);
      await waitFor(async () => (await record("k2"))?.state === "sent", { what: "both sent" });
      assert.equal((await record("k1"))?.state, "sent");
      assert.deepEqual(
        engineCalls.map((m) => m.text),
        ["first", "second"],
      );
    });

    it("are found when the database answers only at the third try", async () => {
      await queued("k1", "first");
      let outages = 2;
      const flaky = new (class extends IdempotencyRepo {
        override async queuedOf(accountId: string): Promise<IdempotencyDoc[]> {
          if (outages-- > 0)
            throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), {
              name: "MongoServerSelectionError",
            });
          return super.queuedOf(accountId);
        }
      })(db, 3600_000);
      assert.equal(await sender({ idempotency: flaky, resumeRetryDelayMs: 10 }).resume("acc_1"), 1);
      await waitFor(async () => (await record("k1"))?.state === "sent", { what: "it sent" });
    });
  });

  describe("a resume under way", () => {
    it("a second resume (a reconnect meanwhile) sends after the first: in order, each once, media kept until sent", async () => {
      const mediaId = await media.put(PNG);
      await queued("k1", "first");
      await queued("k2", "", { kind: "stored", mediaId, mimetype: "image/png", size: PNG.length });
      const text = gate();
      let refuse = true;
      const s = sender({
        engineSend: async (_accountId, message) => {
          if (message.type === "text") await text.shut;
          else if (refuse) {
            refuse = false;
            // The account went elsewhere before the engine was called: queued again, not sent.
            throw Object.assign(new Error("not the owner"), { type: "NOT_OWNER" });
          }
          engineCalls.push(message);
          return { id: `true_${engineCalls.length}` };
        },
      });
      assert.equal(await s.resume("acc_1"), 2);
      assert.equal(await s.resume("acc_1"), 1, "k1 is in flight: the second finds k2");
      text.open();
      // The first sends k1, then k2, which is refused and queued again; the second, after it, sends k2.
      await waitFor(async () => (await record("k2"))?.state === "sent", { what: "k2 sent" });
      assert.equal((await record("k1"))?.state, "sent");
      assert.deepEqual(
        engineCalls.map((m) => m.type),
        ["text", "image"],
      );
      assert.deepEqual(engineCalls[1].media?.data, PNG);
    });

    it("a new send of the account goes after the queued ones, not between them", async () => {
      const pacer = new SendPacer({ minGapMs: 30, maxWaitMs: 10_000, random: () => 0 });
      await queued("k1", "q1");
      await queued("k2", "q2");
      await queued("k3", "q3");
      const first = gate();
      const s = sender({
        pace: (accountId, opts) => pacer.turn(accountId, Date.now(), opts),
        engineSend: async (_accountId, message) => {
          engineCalls.push(message);
          if (engineCalls.length === 1) await first.shut;
          return { id: `true_${engineCalls.length}` };
        },
      });
      assert.equal(await s.resume("acc_1"), 3);
      await waitFor(() => engineCalls.length === 1, { what: "q1 handed to the engine" });
      const fresh = s.send({
        workspaceId: "ws",
        accountId: "acc_1",
        draft: { to: "4915100000002", type: "text", text: "new" },
        digest: "d_new",
      });
      first.open();
      assert.equal((await fresh).status, "sent");
      assert.deepEqual(
        engineCalls.map((m) => m.text),
        ["q1", "q2", "q3", "new"],
      );
    });

    it("a new send without a key whose deadline passes while the queue goes out: SEND_DEADLINE_EXCEEDED, not sent", async () => {
      await queued("k1", "q1");
      const held = gate();
      const s = sender({
        engineSend: async (_accountId, message) => {
          if (message.text === "q1") await held.shut;
          engineCalls.push(message);
          return { id: `true_${engineCalls.length}` };
        },
      });
      try {
        assert.equal(await s.resume("acc_1"), 1);
        await assert.rejects(
          s.send(
            {
              workspaceId: "ws",
              accountId: "acc_1",
              draft: { to: "4915100000002", type: "text", text: "late" },
              digest: "d_late",
            },
            { deadline: Date.now() + 100 },
          ),
          { type: "SEND_DEADLINE_EXCEEDED" },
        );
      } finally {
        held.open();
      }
      await waitFor(async () => (await record("k1"))?.state === "sent", { what: "q1 sent" });
      assert.deepEqual(
        engineCalls.map((m) => m.text),
        ["q1"],
      );
    });
  });

  describe("a resumed send that does not go out", () => {
    it("the workspace lost during the resume: the rest of the queue keeps its media, and the next owner sends it", async () => {
      const mediaId = await media.put(PNG);
      await queued("k1", "first");
      await queued("k2", "", { kind: "stored", mediaId, mimetype: "image/png", size: PNG.length });
      const warnings: string[] = [];
      let owned = true;
      const s = sender({
        fence: () => (owned ? ({ node: "n2", epoch: 2 } as never) : null),
        engineSend: async (_accountId, message) => {
          engineCalls.push(message);
          owned = false; // drained or moved away right after this send
          return { id: `true_${engineCalls.length}` };
        },
        logger: { warn: (m: string) => warnings.push(m) },
      });
      assert.equal(await s.resume("acc_1"), 2);
      await waitFor(() => warnings.length > 0, { what: "the resume to stop" });
      assert.equal((await record("k1"))?.state, "sent");
      assert.equal((await record("k2"))?.state, "recorded", "k2 left for the next owner");
      assert.ok(await media.get(mediaId), "k2's media is kept");
      assert.equal(await sender().resume("acc_1"), 1, "the next owner finds k2");
      await waitFor(async () => (await record("k2"))?.state === "sent", { what: "k2 sent" });
      assert.deepEqual(engineCalls.at(-1)?.media?.data, PNG);
    });

    it("refused by its engine, its move back to `recorded` landing with its answer lost: its media is kept", async () => {
      const mediaId = await media.put(PNG);
      await queued("k1", "", { kind: "stored", mediaId, mimetype: "image/png", size: PNG.length });
      const warnings: string[] = [];
      let refuse = true;
      let restore = () => undefined as void;
      const s = sender({
        engineSend: async (_accountId, message) => {
          if (refuse) {
            refuse = false;
            // The account disconnected again before the engine was called; the write that queues the
            // send again lands, and its answer is lost.
            restore = landThenLoseAnswer(idempotency, "move");
            throw Object.assign(new Error("not connected"), { type: "INVALID_STATE" });
          }
          engineCalls.push(message);
          return { id: `true_${engineCalls.length}` };
        },
        logger: { warn: (m: string) => warnings.push(m) },
      });
      try {
        assert.equal(await s.resume("acc_1"), 1);
        await waitFor(() => warnings.length > 0, { what: "the refused attempt to end" });
      } finally {
        restore();
      }
      assert.equal((await record("k1"))?.state, "recorded");
      assert.ok(await media.get(mediaId), "k1's media is kept for its next try");
      assert.equal(await s.resume("acc_1"), 1);
      await waitFor(async () => (await record("k1"))?.state === "sent", { what: "k1 sent" });
      assert.deepEqual(engineCalls[0]?.media?.data, PNG);
    });
  });

  describe("a sent message whose result write fails", () => {
    it("a retry of its key answers it sent, not lost mid-send, and the record says so once the write lands", async () => {
      let refusals = 2; // the write, and the first write again
      const real = idempotency.move.bind(idempotency);
      idempotency.move = async (...args: Parameters<IdempotencyRepo["move"]>) => {
        if (args[3] === "sent" && refusals-- > 0) throw new Error("the write was refused");
        return real(...args);
      };
      try {
        const s = sender();
        const send: OwnerSend = {
          workspaceId: "ws",
          accountId: "acc_1",
          key: "k1",
          digest: "d_k1",
          draft: { to: "4915100000002", type: "text", text: "hi" },
        };
        const first = await s.send(send);
        assert.equal(first.status, "sent");
        assert.equal((await record("k1"))?.state, "sending", "not written yet");
        const again = await s.send(send);
        assert.deepEqual([again.status, again.id, again.duplicate], ["sent", first.id, true]);
        await waitFor(async () => (await record("k1"))?.state === "sent", {
          what: "the result written again",
        });
        assert.equal((await record("k1"))?.messageId, first.id);
        assert.equal(engineCalls.length, 1, "sent once");
      } finally {
        idempotency.move = real;
      }
    });
  });

  describe("a burst of media sends", () => {
    it("holds at most `mediaInFlight` media at once, and downloads none its queue refuses first", async () => {
      const pacer = new SendPacer({ minGapMs: 40, maxWaitMs: 100, random: () => 0 });
      let fetches = 0;
      let held = 0;
      let peak = 0;
      const s = sender({
        mediaInFlight: 3,
        fetchMedia: async (): Promise<FetchedMedia> => {
          fetches++;
          peak = Math.max(peak, ++held);
          // A download takes a while: the burst arrives while the first ones are under way.
          await new Promise((r) => setImmediate(r));
          return { data: PNG, mimetype: "image/png" };
        },
        // The media held ends as it reaches the engine, or as its turn is refused.
        admit: (accountId) => pacer.admit(accountId),
        pace: (accountId, opts) =>
          pacer.turn(accountId, Date.now(), opts).catch((err: unknown) => {
            held--;
            throw err;
          }),
        engineSend: async (_accountId, message) => {
          held--;
          engineCalls.push(message);
          return { id: `true_${engineCalls.length}` };
        },
      });
      const burst: OwnerSend[] = Array.from({ length: 30 }, (_, i) => ({
        workspaceId: "ws",
        accountId: "acc_1",
        key: `k${i}`,
        digest: `d${i}`,
        draft: { to: "4915100000002", type: "image" },
        media: { kind: "url", url: `http://media.test/${i}.png` },
      }));
      const results = await Promise.allSettled(burst.map((p) => s.send(p)));
      const refused = results.filter((r) => r.status === "rejected");
      for (const r of refused) assert.equal((r.reason as Errors.MoleculerError).type, "SEND_QUEUE_FULL");
      assert.equal(engineCalls.length, results.length - refused.length);
      assert.ok(engineCalls.length >= 3, `${engineCalls.length} sent`);
      assert.ok(peak <= 3, `${peak} media held at once`);
      assert.ok(fetches <= engineCalls.length + 3, `${fetches} downloads for ${engineCalls.length} sends`);
    });

    it("a send without a key that gets no place before its deadline: SEND_DEADLINE_EXCEEDED, nothing fetched", async () => {
      let release!: () => void;
      const slowFirst = new Promise<void>((r) => (release = r));
      const urls: string[] = [];
      const s = sender({
        mediaInFlight: 1,
        fetchMedia: async (url) => {
          urls.push(url);
          await slowFirst;
          return { data: PNG, mimetype: "image/png" };
        },
      });
      const image = (n: number): OwnerSend => ({
        workspaceId: "ws",
        accountId: "acc_1",
        digest: `d${n}`,
        draft: { to: "4915100000002", type: "image" },
        media: { kind: "url", url: `http://media.test/${n}.png` },
      });
      const first = s.send(image(1));
      await assert.rejects(s.send(image(2), { deadline: Date.now() + 50 }), {
        type: "SEND_DEADLINE_EXCEEDED",
        code: 504,
      });
      release();
      assert.equal((await first).status, "sent");
      assert.deepEqual(urls, ["http://media.test/1.png"]);
    });
  });

  describe("the account deleted while its keyed send is under way", () => {
    const send: OwnerSend = {
      workspaceId: "ws",
      accountId: "acc_1",
      key: "k1",
      digest: "d1",
      draft: { to: "4915100000002", type: "text", text: "hi" },
    };

    it("before the engine was called: 404 NOT_FOUND for the account, not sent", async () => {
      const s = sender({
        pace: async () => {
          await idempotency.deleteAccount("acc_1");
          return FREE_SLOT;
        },
      });
      await assert.rejects(s.send(send), { code: 404, type: "NOT_FOUND", data: { account: "acc_1" } });
      assert.equal(engineCalls.length, 0);
    });

    it("its engine's browser gone mid-send: `uncertain`, as the record would have said", async () => {
      const s = sender({
        engineSend: async () => {
          await idempotency.deleteAccount("acc_1");
          throw new SendInterruptedError("acc_1", "Target closed");
        },
      });
      const res = await s.send(send);
      assert.deepEqual([res.id, res.status, res.error?.type], [null, "uncertain", "SEND_INTERRUPTED"]);
    });
  });
});
