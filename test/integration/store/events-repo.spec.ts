// The event log's sequence on the real MongoDB-wire server: two writers (two clients, as two nodes
// would be) appending to one workspace at once never share a seq and leave no gap a reader steps over.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { MongoClient } from "mongodb";
import { EventCursorsRepo } from "../../../src/store/event-cursors-repo.ts";
import { EventsRepo, eventId } from "../../../src/store/events-repo.ts";
import { mongoUrlFor } from "../../support/env.ts";
import { waitFor } from "../../support/wait.ts";

/** An event stored at a position directly, as another (or a dead) writer left it. */
function stored(r: EventsRepo, ws: string, seq: number) {
  return r.col.insertOne({
    _id: eventId(ws, seq),
    workspaceId: ws,
    seq,
    event: "x",
    payload: {},
    at: new Date(),
  });
}

describe("store/events-repo: per-workspace sequence", function () {
  this.timeout(60000);
  let url: string;
  const clients: MongoClient[] = [];

  async function repo(gapWaitMs = 5000): Promise<EventsRepo> {
    const client = await MongoClient.connect(url);
    clients.push(client);
    return new EventsRepo(client.db(), { gapWaitMs });
  }

  beforeEach(() => {
    url = mongoUrlFor(`evlog${randomBytes(3).toString("hex")}`);
  });
  afterEach(async () => {
    await Promise.all(
      clients.map((c) =>
        c
          .db()
          .dropDatabase()
          .finally(() => c.close()),
      ),
    );
    clients.length = 0;
  });

  it("two concurrent writers of one workspace: 400 events at seq 1..400, none twice, none lost", async () => {
    const [a, b] = [await repo(), await repo()];
    await a.ensureIndexes();
    const write = (r: EventsRepo, who: string) =>
      Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          r.append("ws1", "account.message", { who, i, workspaceId: "ws1" }),
        ),
      );
    const [fromA, fromB] = await Promise.all([write(a, "a"), write(b, "b")]);
    const seqs = [...fromA, ...fromB].map((d) => d.seq).sort((x, y) => x - y);
    assert.deepEqual(
      seqs,
      Array.from({ length: 400 }, (_, i) => i + 1),
    );
    // Each writer's own events are in the order it appended them.
    for (const mine of [fromA, fromB])
      assert.deepEqual(
        mine.map((d) => d.seq),
        [...mine.map((d) => d.seq)].sort((x, y) => x - y),
      );
    // A reader sees all 400, each once, in seq order; another workspace is untouched.
    const read = await a.readAfter("ws1", 0, 1000);
    assert.deepEqual(
      read.map((d) => d.seq),
      seqs,
    );
    const who = new Set(read.map((d) => `${(d.payload as any).who}${(d.payload as any).i}`));
    assert.equal(who.size, 400);
    assert.deepEqual(await a.readAfter("ws10", 0, 10), []);
    assert.equal(await b.highest("ws1"), 400);
  });

  it("an insert whose rows landed before it answered a transient error stores each event once", async () => {
    const r = await repo();
    await r.ensureIndexes();
    // FerretDB can answer "database is locked" after the rows landed: the insert is tried again and
    // finds its own rows in the way.
    const real = r.col.insertMany.bind(r.col);
    let failNext: (docs: unknown[]) => boolean = () => false;
    (r.col as any).insertMany = async (docs: any[], options: any) => {
      const res = await real(docs, options);
      if (failNext(docs)) {
        failNext = () => false;
        throw new Error("database is locked");
      }
      return res;
    };
    // A lone event (the batched unordered insert), then a run of four (one ordered insert).
    failNext = () => true;
    const first = await r.append("ws5", "account.status", { n: 0, workspaceId: "ws5" });
    assert.equal(first.seq, 1);
    failNext = (docs) => docs.length > 1;
    const appends = [1, 2, 3, 4, 5].map((n) => r.append("ws5", "account.status", { n, workspaceId: "ws5" }));
    const docs = await Promise.all(appends);
    assert.deepEqual(
      docs.map((d) => d.seq),
      [2, 3, 4, 5, 6],
    );
    const read = await r.readAfter("ws5", 0, 100);
    assert.deepEqual(
      read.map((d) => (d.payload as { n: number }).n),
      [0, 1, 2, 3, 4, 5],
      "each event stored once, in order",
    );
    // A run of 150 goes in two inserts; the first lands and answers the error: the second takes the
    // very next position (no gap a reader would wait at).
    failNext = (docs) => docs.length > 1;
    const lone = r.append("ws5", "account.status", { n: 6, workspaceId: "ws5" });
    const run = Array.from({ length: 150 }, (_, i) =>
      r.append("ws5", "account.status", { n: i + 7, workspaceId: "ws5" }),
    );
    const runDocs = await Promise.all([lone, ...run]);
    assert.deepEqual(
      runDocs.map((d) => d.seq),
      Array.from({ length: 151 }, (_, i) => i + 7),
    );
    assert.equal((await r.readAfter("ws5", 0, 1000)).length, 157);
  });

  it("a run whose second insert fails for good settles the events the first stored as logged", async () => {
    const r = await repo();
    await r.ensureIndexes();
    const real = r.col.insertMany.bind(r.col);
    (r.col as any).insertMany = async (docs: any[], options: any) => {
      if (docs.length === 49) throw new Error("disk I/O error"); // not transient: no retry
      return real(docs, options);
    };
    // The first append goes alone; the other 149 as one run: 100, then 49 that fail.
    const appends = Array.from({ length: 150 }, (_, i) =>
      r.append("ws8", "account.status", { n: i, workspaceId: "ws8" }),
    );
    const settled = await Promise.allSettled(appends);
    const logged = settled.filter((x) => x.status === "fulfilled").map((x) => x.value.seq);
    assert.deepEqual(
      logged,
      Array.from({ length: 101 }, (_, i) => i + 1),
      "stored, and answered so",
    );
    assert.equal(settled.filter((x) => x.status === "rejected").length, 49);
    assert.equal((await r.readAfter("ws8", 0, 1000)).length, 101);
  });

  it("an event whose insert landed but whose answer was lost is logged once when tried again with its key", async () => {
    const r = await repo();
    await r.ensureIndexes();
    // The rows land, then the database goes away before it answers (not transient: no retry inside).
    const real = r.col.insertMany.bind(r.col);
    let lose = true;
    (r.col as any).insertMany = async (docs: any[], options: any) => {
      const res = await real(docs, options);
      if (lose) throw Object.assign(new Error("server went away"), { name: "MongoServerClosedError" });
      return res;
    };
    await assert.rejects(r.append("ws9", "account.status", { n: 1, workspaceId: "ws9" }, "key-1"));
    const run = ["key-2", "key-3"].map((key, i) =>
      r.append("ws9", "account.status", { n: i + 2, workspaceId: "ws9" }, key),
    );
    assert.equal((await Promise.allSettled(run)).filter((x) => x.status === "rejected").length, 2);
    lose = false;
    // The caller tries again with the same keys (src/session/pipeline.ts), and once more with a new one.
    const again = await Promise.all(
      ["key-1", "key-2", "key-3", "key-4"].map((key, i) =>
        r.append("ws9", "account.status", { n: i + 1, workspaceId: "ws9" }, key),
      ),
    );
    assert.deepEqual(
      again.map((d) => d.seq),
      [1, 2, 3, 4],
    );
    assert.deepEqual(
      (await r.readAfter("ws9", 0, 100)).map((d) => (d.payload as { n: number }).n),
      [1, 2, 3, 4],
      "each event stored once",
    );
  });

  it("an event whose failed try committed late, in the position its next try takes, is logged there once", async () => {
    const r = await repo();
    await r.ensureIndexes();
    const real = r.col.insertMany.bind(r.col);
    let late: any[] | null = null;
    (r.col as any).insertMany = async (docs: any[], options: any) => {
      if (!late) {
        // The first try reaches the server but its write is held, and the client gives up on it.
        late = docs;
        throw Object.assign(new Error("server went away"), { name: "MongoServerClosedError" });
      }
      // The held write commits just before the next try's.
      if (late.length > 0) await real(late.splice(0), { ordered: true });
      return real(docs, options);
    };
    await assert.rejects(r.append("ws10", "account.status", { n: 1, workspaceId: "ws10" }, "late-1"));
    const again = await r.append("ws10", "account.status", { n: 1, workspaceId: "ws10" }, "late-1");
    assert.equal(again.seq, 1);
    const next = await r.append("ws10", "account.status", { n: 2, workspaceId: "ws10" }, "late-2");
    assert.equal(next.seq, 2);
    assert.deepEqual(
      (await r.readAfter("ws10", 0, 100)).map((d) => (d.payload as { n: number }).n),
      [1, 2],
      "each event stored once",
    );
  });

  it("a run longer than the server's insert batch, refused at its first position, lands nowhere twice", async () => {
    const r = await repo();
    await r.ensureIndexes();
    await r.append("ws6", "account.status", { n: 0, workspaceId: "ws6" });
    await r.append("ws6", "account.status", { n: 1, workspaceId: "ws6" });
    // Another writer took position 4 since.
    await stored(r, "ws6", 4);
    // The first append goes alone (to 3); the other 249 as one run from 4, refused at once.
    const appends = Array.from({ length: 250 }, (_, i) =>
      r.append("ws6", "account.status", { n: i + 2, workspaceId: "ws6" }),
    );
    const docs = await Promise.all(appends);
    const read = await r.readAfter("ws6", 0, 1000);
    // FerretDB went on with an ordered insert's next batch of 100 after a refused row: the rows past
    // it landed while the writer placed them again.
    assert.equal(read.length, 253, "each event stored once");
    assert.deepEqual(
      docs.map((d) => d.seq),
      [3, ...Array.from({ length: 249 }, (_, i) => i + 5)],
    );
    assert.deepEqual(
      read.filter((d) => d.seq !== 4).map((d) => (d.payload as { n: number }).n),
      Array.from({ length: 252 }, (_, i) => i),
      "in the order appended",
    );
  });

  it("a reader stops at a young gap (an insert in flight) and steps over it once it is old", async () => {
    const r = await repo(300);
    await r.ensureIndexes();
    await r.append("ws2", "account.status", { workspaceId: "ws2" });
    // Another writer took seq 2 and has not inserted it; seq 3 is stored.
    await stored(r, "ws2", 3);
    assert.deepEqual(
      (await r.readAfter("ws2", 0, 10)).map((d) => d.seq),
      [1],
    );
    const stepped = await waitFor(
      async () => {
        const seqs = (await r.readAfter("ws2", 0, 10)).map((d) => d.seq);
        return seqs.length > 1 ? seqs : null;
      },
      { what: "the reader to step over the gap once it is 300 ms old", timeoutMs: 5000 },
    );
    assert.deepEqual(stepped, [1, 3]);
  });

  it("a cold writer finds the top by _id probes, past a short gap a dead writer left", async () => {
    const r = await repo();
    await r.ensureIndexes();
    for (const seq of [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13]) await stored(r, "ws4", seq);
    const cold = await repo();
    assert.equal((await cold.append("ws4", "account.message", { workspaceId: "ws4" })).seq, 14);
    assert.equal((await cold.append("ws5", "account.message", { workspaceId: "ws5" })).seq, 1);
  });

  it("a cold writer's first event goes past what is stored even when the first positions are gaps", async () => {
    const r = await repo();
    // Dead writers left 1 (and 2) empty: the lookups made together at the start must not read that as
    // a new workspace.
    await stored(r, "wsg1", 2);
    for (const seq of [3, 4, 5]) await stored(r, "wsg2", seq);
    await stored(r, "wsg3", 4);
    const cold = await repo();
    const first = async (ws: string) => (await cold.append(ws, "account.message", { workspaceId: ws })).seq;
    assert.deepEqual([await first("wsg1"), await first("wsg2"), await first("wsg3")], [3, 6, 5]);
  });

  it("a workspace said to be empty costs no read before its first event; one that is not is probed", async () => {
    const r = await repo();
    for (const seq of [1, 2, 3]) await stored(r, "wse2", seq);
    const client = await MongoClient.connect(url, { monitorCommands: true });
    clients.push(client);
    const cold = new EventsRepo(client.db());
    const finds: string[] = [];
    const count = (e: { commandName: string; command: Record<string, unknown> }) => {
      if (e.commandName === "find") finds.push(String(e.command.find));
    };
    client.on("commandStarted", count);
    const first = async (ws: string) => {
      cold.expectEmpty(ws);
      return (await cold.append(ws, "account.created", { workspaceId: ws })).seq;
    };
    try {
      assert.equal(await first("wse1"), 1);
      assert.deepEqual(finds, []);
      // Not empty after all (a writer got there first): the insert at 1 is refused, the top probed for.
      assert.equal(await first("wse2"), 4);
    } finally {
      client.off("commandStarted", count);
    }
  });

  it("prune keeps each workspace's last event, so a cold writer continues after it", async () => {
    const r = await repo();
    await r.ensureIndexes();
    for (let i = 0; i < 5; i++) await r.append("ws3", "account.message", { workspaceId: "ws3", i });
    assert.equal(await r.prune(new Date(Date.now() + 1000)), 4);
    const cold = await repo();
    assert.equal((await cold.append("ws3", "account.message", { workspaceId: "ws3" })).seq, 6);
  });

  it("a writer idle in a workspace past half the retention writes after the top, never into a pruned position", async () => {
    const client = await MongoClient.connect(url);
    clients.push(client);
    // A retention of 4 ms: the writer's position is stale 2 ms after its last write.
    const idle = new EventsRepo(client.db(), { retentionMs: 4 });
    await idle.ensureIndexes();
    assert.equal((await idle.append("ws4", "account.deleted", { workspaceId: "ws4" })).seq, 1);
    const other = await repo();
    for (let i = 0; i < 10; i++) await other.append("ws4", "account.message", { workspaceId: "ws4", i });
    assert.equal(await other.prune(new Date(Date.now() + 1000)), 10, "1..10 go, the top (11) stays");
    // Ten appends and a prune later: well past 2 ms.
    const at = await idle.append("ws4", "account.deleted", { workspaceId: "ws4", again: true });
    assert.equal(at.seq, 12, "after the top, not at its old position 2");
    const read = await other.readAfter("ws4", 11, 10);
    assert.deepEqual(
      read.map((e) => e.seq),
      [12],
    );
  });

  it("readers saving a new cursor at once (two webhooks nodes) all succeed; one cursor is kept", async () => {
    const [a, b] = [await repo(), await repo()];
    const readers = [a, b].flatMap((r) =>
      Array.from({ length: 4 }, () => new EventCursorsRepo(r.col.db, "webhooks")),
    );
    for (let round = 0; round < 10; round++) {
      const ws = `cursor-${round}`;
      // Each finds no document and inserts: without the retry, the losers were refused with E11000.
      await Promise.all(readers.map((c, i) => c.save(ws, i + 1)));
      const saved = await readers[0].col.find({ workspaceId: ws }).toArray();
      assert.equal(saved.length, 1);
      assert.ok(saved[0].seq >= 1 && saved[0].seq <= readers.length);
    }
  });
});
