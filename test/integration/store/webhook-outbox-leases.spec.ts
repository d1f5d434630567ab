// The two MongoDB building blocks of webhooks against the real MongoDB-wire server (FerretDB, which has
// no atomic conditional update under concurrency): idempotent outbox recording from racing nodes, and
// per-endpoint leases claimed by inserting terms.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { MongoClient, type Db, type Document } from "mongodb";
import { LeaseRepo } from "../../../src/store/webhook-leases-repo.ts";
import { OutboxRepo, slotId } from "../../../src/store/webhook-outbox-repo.ts";
import type { OutboxDoc } from "../../../src/store/webhook-docs.ts";
import { mongoUrlFor } from "../../support/env.ts";
import { endpoint, event } from "../../support/outbox-fixtures.ts";
import { waitFor } from "../../support/wait.ts";

/** Asserts that a queue holds these events, in this order, at slots 1, 2, 3… */
async function assertQueue(repo: OutboxRepo, endpointId: string, accountId: string, eventIds: string[]) {
  const rows = await repo.col.find({ endpointId, accountId }).sort({ seq: 1 }).toArray();
  assert.deepEqual(
    rows.map((r) => r.eventId),
    eventIds,
    `${endpointId}/${accountId}: one row per event, in stream order`,
  );
  assert.deepEqual(
    rows.map((r) => r.seq),
    rows.map((_, i) => i + 1),
  );
}

describe("webhooks storage on the real MongoDB-wire server", () => {
  let client: MongoClient;
  let db: Db;
  before(async () => {
    client = await MongoClient.connect(mongoUrlFor(`whstore${randomBytes(3).toString("hex")}`));
    db = client.db();
  });
  after(async () => client.close());

  it("three nodes racing to record the same event stream store each event once, in stream order", async () => {
    const nodes = ["n1", "n2", "n3"].map((n) => new OutboxRepo(db, n));
    await nodes[0].ensureIndexes();
    const endpoints = [endpoint("wh_race1"), endpoint("wh_race2")];
    const stream = Array.from({ length: 15 }, (_, i) => event(i % 2 ? "acc_x" : "acc_y", i));
    // Each node records the stream one event at a time, in order (as the service does per account).
    const results = await Promise.all(
      nodes.map(async (repo) => {
        let inserted = 0;
        for (const ev of stream)
          inserted += (await repo.record(ev, endpoints)).filter((r) => r.inserted).length;
        return inserted;
      }),
    );
    assert.equal(
      results.reduce((a, b) => a + b, 0),
      stream.length * endpoints.length,
      "each (event, endpoint) inserted by exactly one node",
    );
    for (const ep of endpoints) {
      for (const acc of ["acc_x", "acc_y"]) {
        const expected = stream.filter((e) => e.accountId === acc).map((e) => e.eventId);
        await assertQueue(nodes[0], ep._id, acc, expected);
      }
    }
    const heads = await nodes[1].pendingHeads("wh_race1");
    assert.deepEqual(heads.map((h) => [h.accountId, h.seq]).sort(), [
      ["acc_x", 1],
      ["acc_y", 1],
    ]);
  });

  it("nodes recording the same stream in runs of different lengths store each event once, in stream order", async () => {
    const nodes = ["r1", "r2", "r3"].map((n) => new OutboxRepo(db, n));
    await nodes[0].ensureIndexes();
    const endpoints = [endpoint("wh_runs1"), endpoint("wh_runs2")];
    const accounts = ["acc_a", "acc_b", "acc_c"];
    const stream = Array.from({ length: 40 }, (_, i) => event(accounts[i % 3], 1000 + i));
    // Another publisher's event got into one queue first (not in the stream): the runs go after it.
    await nodes[2].record({ ...event("acc_b", 999), eventId: "evt_other" }, [endpoints[0]]);
    const runsOf = (size: number) =>
      Array.from({ length: Math.ceil(stream.length / size) }, (_, k) =>
        stream.slice(k * size, (k + 1) * size),
      );
    const results = await Promise.all(
      [1, 7, 40].map(async (size, n) => {
        let inserted = 0;
        for (const run of runsOf(size)) {
          const done = await nodes[n].recordMany(run.map((ev) => ({ ev, endpoints })));
          assert.equal(done.length, run.length * endpoints.length, "one answer per event and endpoint");
          inserted += done.filter((r) => r.inserted).length;
        }
        return inserted;
      }),
    );
    assert.equal(
      results.reduce((a, b) => a + b, 0),
      stream.length * endpoints.length,
      "each (event, endpoint) inserted by exactly one node",
    );
    for (const ep of endpoints) {
      for (const acc of accounts) {
        const expected = stream.filter((e) => e.accountId === acc).map((e) => e.eventId);
        if (ep._id === "wh_runs1" && acc === "acc_b") expected.unshift("evt_other");
        await assertQueue(nodes[0], ep._id, acc, expected);
      }
    }
  });

  it("a run of more rows than one insert carries goes in several inserts at once, each queue in order", async () => {
    const endpoints = [endpoint("wh_wide1"), endpoint("wh_wide2")];
    const accounts = Array.from({ length: 40 }, (_, i) => `acc_w${i}`);
    const stream = [1, 2, 3].flatMap((n) => accounts.map((acc) => event(acc, 8000 + n)));
    const first = new OutboxRepo(db, "w1");
    await first.ensureIndexes();
    // A queue in the middle of the run has a row the racing nodes do not know of.
    await first.record({ ...event("acc_w21", 7999), eventId: "evt_wide_other" }, [endpoints[1]]);
    // Two nodes record the same run of 240 rows (80 queues of 3) at once; the first counts its own
    // inserts in flight.
    const nodes = [new OutboxRepo(db, "w2"), new OutboxRepo(db, "w3")];
    const real = nodes[0].col.insertMany.bind(nodes[0].col);
    let inFlight = 0;
    let most = 0;
    (nodes[0].col as any).insertMany = async (docs: OutboxDoc[], options: any) => {
      most = Math.max(most, ++inFlight);
      try {
        return await real(docs, options);
      } finally {
        inFlight--;
      }
    };
    const done = await Promise.all(nodes.map((n) => n.recordMany(stream.map((ev) => ({ ev, endpoints })))));
    for (const d of done) assert.equal(d.length, stream.length * endpoints.length);
    assert.equal(
      done.flat().filter((r) => r.inserted).length,
      stream.length * endpoints.length,
      "each (event, endpoint) inserted by exactly one node",
    );
    assert.ok(most > 1, `one node's inserts overlap (at most ${most} in flight)`);
    for (const ep of endpoints) {
      for (const acc of accounts) {
        const expected = stream.filter((e) => e.accountId === acc).map((e) => e.eventId);
        if (ep._id === "wh_wide2" && acc === "acc_w21") expected.unshift("evt_wide_other");
        await assertQueue(first, ep._id, acc, expected);
      }
      await first.removeEndpoint(ep._id);
    }
  });

  it("a run whose one insert fails is tried again only after its other inserts ended", async () => {
    const endpoints = [endpoint("wh_again")];
    const stream = [1, 2].flatMap((n) => Array.from({ length: 60 }, (_, i) => event(`acc_a${i}`, 9000 + n)));
    const repo = new OutboxRepo(db, "a1");
    await repo.ensureIndexes();
    // The first insert answers FerretDB's "database is locked" (nothing landed); the second lands,
    // but slowly. Each insert that starts notes how many are still in flight.
    const real = repo.col.insertMany.bind(repo.col);
    let calls = 0;
    let inFlight = 0;
    const startedBeside: number[] = [];
    (repo.col as any).insertMany = async (docs: OutboxDoc[], options: any) => {
      const call = ++calls;
      startedBeside.push(inFlight++);
      try {
        if (call === 1) {
          await new Promise((r) => setTimeout(r, 20));
          throw new Error("database is locked");
        }
        if (call === 2) await new Promise((r) => setTimeout(r, 300));
        return await real(docs, options);
      } finally {
        inFlight--;
      }
    };
    try {
      const done = await repo.recordMany(stream.map((ev) => ({ ev, endpoints })));
      assert.equal(done.length, stream.length);
    } finally {
      delete (repo.col as any).insertMany;
    }
    assert.deepEqual(startedBeside.slice(0, 2), [0, 1], "the run's two inserts went at once");
    assert.equal(
      startedBeside[2],
      0,
      `the try after the failure starts once the slow insert ended (in flight at each start: ${startedBeside.join(",")})`,
    );
    for (let i = 0; i < 60; i++) {
      const acc = `acc_a${i}`;
      await assertQueue(
        repo,
        "wh_again",
        acc,
        stream.filter((e) => e.accountId === acc).map((e) => e.eventId),
      );
    }
    await repo.removeEndpoint("wh_again");
  });

  it("queues recorded together: one whose slot is taken goes on its own, the ones after it still go in", async () => {
    const repo = new OutboxRepo(db, "t1");
    await repo.ensureIndexes();
    const endpoints = [endpoint("wh_together")];
    // Each queue has a first row this node knows of; then acc_t2's next slot is taken behind its back.
    const firsts = ["acc_t1", "acc_t2", "acc_t3"].map((acc) => event(acc, 5990));
    const [, second] = await repo.recordMany(firsts.map((ev) => ({ ev, endpoints })));
    await repo.col.insertOne({
      ...second.doc!,
      _id: slotId("wh_together", "acc_t2", 2),
      seq: 2,
      eventId: "evt_taken",
    });
    const stream = Array.from({ length: 9 }, (_, i) => event(`acc_t${(i % 3) + 1}`, 6001 + i));
    const done = await repo.recordMany(stream.map((ev) => ({ ev, endpoints })));
    assert.equal(done.length, 9);
    for (const acc of ["acc_t1", "acc_t2", "acc_t3"]) {
      const expected = stream.filter((e) => e.accountId === acc).map((e) => e.eventId);
      if (acc === "acc_t2") expected.unshift("evt_taken");
      expected.unshift(event(acc, 5990).eventId);
      await assertQueue(repo, "wh_together", acc, expected);
    }
    await repo.removeEndpoint("wh_together");
  });

  it("a node new to many queues reads each one's tail by its queue alone, then appends after them", async () => {
    const endpoints = [endpoint("wh_cold1"), endpoint("wh_cold2")];
    const accounts = Array.from({ length: 10 }, (_, i) => `acc_cold${i}`);
    const first = new OutboxRepo(db, "c1");
    await first.ensureIndexes();
    const before = accounts.flatMap((acc) => [1, 2, 3].map((n) => event(acc, 7000 + n)));
    await first.recordMany(before.map((ev) => ({ ev, endpoints })));

    // A node that knows none of the 20 queues (it just took the workspace over), on a client of its own
    // whose commands are counted.
    const watched = await MongoClient.connect(mongoUrlFor(db.databaseName), { monitorCommands: true });
    try {
      const reads: Record<string, unknown>[] = [];
      watched.on("commandStarted", (e) => {
        if (e.commandName === "find" && e.command.find === "webhook_outbox") reads.push(e.command.filter);
      });
      const next = new OutboxRepo(watched.db(), "c2");
      const run = accounts.map((acc) => event(acc, 7004));
      const done = await next.recordMany(run.map((ev) => ({ ev, endpoints })));
      assert.deepEqual(
        done.map((r) => [r.seq, r.inserted]),
        run.flatMap(() => endpoints.map(() => [4, true])),
        "each event after the three already in its queue",
      );
      // Plain string equalities, which our FerretDB build searches in the queue index (a `$in` read of
      // every queue at once went through the whole outbox): outbox-indexed-reads.spec.ts.
      assert.deepEqual(
        reads.map((f) => `${String(f.endpointId)}/${String(f.accountId)}`).sort(),
        endpoints.flatMap((ep) => accounts.map((acc) => `${ep._id}/${acc}`)).sort(),
        "one read per queue, by the queue alone",
      );
    } finally {
      await watched.close();
    }
    for (const ep of endpoints) {
      for (const acc of accounts) {
        const expected = [1, 2, 3, 4].map((n) => event(acc, 7000 + n).eventId);
        await assertQueue(first, ep._id, acc, expected);
      }
      await first.removeEndpoint(ep._id);
    }
  });

  it("a node that finds a run recorded by another node reads the rest of it at once", async () => {
    const [a, b] = ["e1", "e2"].map((n) => new OutboxRepo(db, n));
    await a.ensureIndexes();
    const endpoints = [endpoint("wh_ends")];
    const stream = Array.from({ length: 6 }, (_, i) => event("acc_e", 4000 + i));
    // `b` records the first event; `a` then records the rest while `b` is busy elsewhere.
    await b.recordMany([{ ev: stream[0], endpoints }]);
    await a.recordMany(stream.map((ev) => ({ ev, endpoints })));
    const done = await b.recordMany(stream.slice(1).map((ev) => ({ ev, endpoints })));
    assert.deepEqual(
      done.map((r) => [r.seq, r.inserted]),
      [
        [2, false],
        [3, false],
        [4, false],
        [5, false],
        [6, false],
      ],
    );
    // The rows come back as found, for the holder to deliver without reading them again.
    assert.ok(done.every((r, k) => r.doc?.eventId === stream[k + 1].eventId && r.doc.status === "pending"));
    // Its next run goes after the recorded one.
    const [next] = await b.recordMany([{ ev: event("acc_e", 4006), endpoints }]);
    assert.deepEqual([next.seq, next.inserted], [7, true]);
  });

  it("a run partly recorded before a foreign event keeps stream order after it", async () => {
    const a = new OutboxRepo(db, "s1");
    const b = new OutboxRepo(db, "s2");
    await a.ensureIndexes();
    const endpoints = [endpoint("wh_shift")];
    const stream = Array.from({ length: 6 }, (_, i) => event("acc_s", 2000 + i));
    // `b` records the first three, then a foreign event takes slot 4; `a`, which heard of none of it,
    // records the whole run: the first three are found recorded (in slots it did not look at).
    await b.recordMany(stream.slice(0, 3).map((ev) => ({ ev, endpoints })));
    await b.record({ ...event("acc_s", 1999), eventId: "evt_foreign" }, endpoints);
    const done = await a.recordMany(stream.map((ev) => ({ ev, endpoints })));
    assert.deepEqual(
      done.map((r) => [r.seq, r.inserted]),
      [
        [null, false],
        [null, false],
        [null, false],
        [5, true],
        [6, true],
        [7, true],
      ],
    );
    const rows = await a.col.find({ endpointId: "wh_shift" }).sort({ seq: 1 }).toArray();
    assert.deepEqual(
      rows.map((r) => r.eventId),
      [...stream.slice(0, 3).map((e) => e.eventId), "evt_foreign", ...stream.slice(3).map((e) => e.eventId)],
    );
  });

  it("a run that meets a taken slot midway stops there and goes on after it (ordered insert)", async () => {
    const repo = new OutboxRepo(db, "m1");
    await repo.ensureIndexes();
    const endpoints = [endpoint("wh_mid")];
    const stream = Array.from({ length: 4 }, (_, i) => event("acc_m", 3000 + i));
    const [first] = await repo.recordMany([{ ev: stream[0], endpoints }]);
    // Slot 3 is taken behind this node's back while slot 2 stays free.
    await repo.col.insertOne({
      ...first.doc!,
      _id: slotId("wh_mid", "acc_m", 3),
      seq: 3,
      eventId: "evt_mid",
    });
    const done = await repo.recordMany(stream.slice(1).map((ev) => ({ ev, endpoints })));
    assert.deepEqual(
      done.map((r) => [r.seq, r.inserted]),
      [
        [2, true],
        [4, true],
        [5, true],
      ],
    );
    const rows = await repo.col.find({ endpointId: "wh_mid" }).sort({ seq: 1 }).toArray();
    assert.deepEqual(
      rows.map((r) => r.eventId),
      [stream[0].eventId, stream[1].eventId, "evt_mid", stream[2].eventId, stream[3].eventId],
    );
  });

  it("a run longer than the server's insert batch that meets a taken slot keeps stream order", async () => {
    const repo = new OutboxRepo(db, "l1");
    await repo.ensureIndexes();
    const endpoints = [endpoint("wh_long")];
    const stream = Array.from({ length: 250 }, (_, i) => event("acc_l", 4000 + i));
    const [first] = await repo.recordMany([{ ev: stream[0], endpoints }]);
    await repo.col.insertOne({
      ...first.doc!,
      _id: slotId("wh_long", "acc_l", 2),
      seq: 2,
      eventId: "evt_long_foreign",
    });
    // FerretDB went on with an ordered insert's next batch of 100 after the refused row: those rows
    // landed ahead of the events before them.
    await repo.recordMany(stream.slice(1).map((ev) => ({ ev, endpoints })));
    await assertQueue(repo, "wh_long", "acc_l", [
      stream[0].eventId,
      "evt_long_foreign",
      ...stream.slice(1).map((e) => e.eventId),
    ]);
  });

  it("a queue's pending head is found going through the pending rows as they come, not loading them all", async () => {
    const repo = new OutboxRepo(db, "h1");
    const endpoints = [endpoint("wh_heads")];
    const accounts = ["acc_h1", "acc_h2", "acc_h3"];
    const done = await repo.recordMany(
      [1, 2, 3].flatMap((n) => accounts.map((acc) => ({ ev: event(acc, 7300 + n), endpoints }))),
    );
    const first = (acc: string) => done.find((r) => r.accountId === acc && r.seq === 1)!.doc!._id;
    await repo.markDelivered([{ id: first("acc_h2"), attempts: 1, statusCode: 200 }]);
    // A read that would hold every pending row at once (a receiver down for days leaves many) fails here.
    const find = repo.col.find.bind(repo.col);
    (repo.col as { find: unknown }).find = (...args: Parameters<typeof find>) => {
      const cursor = find(...args);
      cursor.toArray = () => Promise.reject(new Error("every pending row read into memory at once"));
      return cursor;
    };
    try {
      const heads = await repo.pendingHeads("wh_heads");
      assert.deepEqual(heads.map((h) => [h.accountId, h.seq]).sort(), [
        ["acc_h1", 1],
        ["acc_h2", 2],
        ["acc_h3", 1],
      ]);
      const one = await repo.pendingHeads("wh_heads", "acc_h2");
      assert.deepEqual(one, [{ endpointId: "wh_heads", accountId: "acc_h2", seq: 2 }]);
    } finally {
      delete (repo.col as { find?: unknown }).find;
      await repo.removeEndpoint("wh_heads");
    }
  });

  it("rows marked delivered together get their own attempt counts; other rows stay as they were", async () => {
    const repo = new OutboxRepo(db, "k1");
    await repo.ensureIndexes();
    const endpoints = [endpoint("wh_marks")];
    const done = await repo.recordMany(
      Array.from({ length: 4 }, (_, i) => ({ ev: event("acc_k", 5000 + i), endpoints })),
    );
    const [a, b, c, d] = done.map((r) => r.doc!._id);
    await repo.markDelivered([
      { id: a, attempts: 1, statusCode: 200 },
      { id: b, attempts: 3, statusCode: 204 },
      { id: c, attempts: 1, statusCode: 200 },
    ]);
    const rows = await repo.col.find({ endpointId: "wh_marks" }).sort({ seq: 1 }).toArray();
    assert.deepEqual(
      rows.map((r) => [r._id, r.status, r.attempts, r.lastStatusCode]),
      [
        [a, "delivered", 1, 200],
        [b, "delivered", 3, 204],
        [c, "delivered", 1, 200],
        [d, "pending", 0, null],
      ],
    );
    assert.ok(rows.slice(0, 3).every((r) => r.deliveredAt instanceof Date));
    // Finished rows would be pruned by the test below, which counts what it prunes.
    await repo.removeEndpoint("wh_marks");
  });

  it("a failure is written only on a pending row: a late one from an old holder leaves a delivered row delivered", async () => {
    const repo = new OutboxRepo(db, "f1");
    const endpoints = [endpoint("wh_fence")];
    const done = await repo.recordMany(
      Array.from({ length: 2 }, (_, i) => ({ ev: event("acc_f", 6000 + i), endpoints })),
    );
    try {
      const [delivered, pending] = done.map((r) => r.doc!._id);
      // The endpoint's next holder delivered the first row; the old holder's write of its last failed
      // attempt comes after.
      await repo.markDelivered([{ id: delivered, attempts: 1, statusCode: 200 }]);
      const late = { attempts: 3, error: "timeout after 10000 ms", statusCode: null };
      const retryAt = new Date(Date.now() + 60000);
      const written = [
        await repo.markFailed(delivered, { ...late, nextAttemptAt: null }),
        await repo.markFailed(delivered, { ...late, nextAttemptAt: new Date() }),
        await repo.markFailed(pending, { ...late, attempts: 1, nextAttemptAt: retryAt }),
      ];
      const rows = await repo.col.find({ endpointId: "wh_fence" }).sort({ seq: 1 }).toArray();
      assert.deepEqual(
        rows.map((r) => [r.status, r.attempts, r.lastError]),
        [
          ["delivered", 1, null],
          ["pending", 1, "timeout after 10000 ms"],
        ],
      );
      assert.equal(rows[1].nextAttemptAt.getTime(), retryAt.getTime());
      assert.deepEqual(written, [false, false, true], "whether each write found its row pending");
    } finally {
      await repo.removeEndpoint("wh_fence");
    }
  });

  it("pruning deletes old finished rows but keeps each queue's last row, so seqs keep increasing", async () => {
    const repo = new OutboxRepo(db, "n1");
    const endpoints = [endpoint("wh_prune")];
    for (let i = 0; i < 4; i++) await repo.record(event("acc_p", 100 + i), endpoints);
    const rows = await repo.col.find({ endpointId: "wh_prune" }).sort({ seq: 1 }).toArray();
    await repo.markDelivered([{ id: rows[0]._id, attempts: 1, statusCode: 200 }]);
    await repo.markFailed(rows[1]._id, {
      attempts: 3,
      error: "HTTP 500",
      statusCode: 500,
      nextAttemptAt: null,
    });
    await repo.markDelivered([{ id: rows[3]._id, attempts: 1, statusCode: 200 }]);
    // rows[2] stays pending.
    assert.equal(await repo.prune(new Date(Date.now() + 1000)), 2, "delivered #1 and dead #2 go");
    const left = await repo.col.find({ endpointId: "wh_prune" }).sort({ seq: 1 }).toArray();
    assert.deepEqual(
      left.map((r) => [r.seq, r.status]),
      [
        [3, "pending"],
        [4, "delivered"],
      ],
    );
    assert.equal(await repo.prune(new Date(Date.now() - 60000)), 0, "nothing younger than the cutoff goes");
    await repo.record(event("acc_p", 200), endpoints);
    const [last] = await repo.col.find({ endpointId: "wh_prune" }).sort({ seq: -1 }).limit(1).toArray();
    assert.equal(last.seq, 5);
  });

  it("pruning skips a queue whose only old finished row is its last, and still deletes a lone row that is not", async () => {
    const repo = new OutboxRepo(db, "q1");
    const endpoints = [endpoint("wh_dormant")];
    const watched = await MongoClient.connect(mongoUrlFor(db.databaseName), { monitorCommands: true });
    try {
      // A quiet queue: its rows were delivered and pruned down to its last one.
      const quiet = await repo.recordMany(
        [1, 2, 3].map((n) => ({ ev: event("acc_quiet", 7100 + n), endpoints })),
      );
      await repo.markDelivered(quiet.map((r) => ({ id: r.doc!._id, attempts: 1, statusCode: 200 })));
      await repo.prune(new Date(Date.now() + 1000));
      // A queue whose one finished row is followed by a pending one.
      const [first] = await repo.recordMany(
        [1, 2].map((n) => ({ ev: event("acc_moving", 7200 + n), endpoints })),
      );
      await repo.markDelivered([{ id: first.doc!._id, attempts: 1, statusCode: 200 }]);

      const sent: { command: string; filter: Document }[] = [];
      watched.on("commandStarted", (e) => {
        if (e.commandName === "find" && e.command.find === "webhook_outbox")
          sent.push({ command: "find", filter: e.command.filter ?? {} });
        if (e.commandName === "delete" && e.command.delete === "webhook_outbox")
          for (const d of e.command.deletes as { q: Document }[])
            sent.push({ command: "delete", filter: d.q });
      });
      await new OutboxRepo(watched.db(), "q2").prune(new Date(Date.now() + 1000));

      const rows = await repo.col.find({ endpointId: "wh_dormant" }).sort({ accountId: 1, seq: 1 }).toArray();
      assert.deepEqual(
        rows.map((r) => [r.accountId, r.seq, r.status]),
        [
          ["acc_moving", 2, "pending"],
          ["acc_quiet", 3, "delivered"],
        ],
      );
      const aboutQuiet = sent.filter((c) => c.filter.accountId === "acc_quiet");
      assert.deepEqual(aboutQuiet, [], "the quiet queue was neither read nor deleted from");
      // Where the server is our FerretDB build, the read of the slots after lone rows goes by the
      // `_id` index (outbox-indexed-reads.spec.ts checks the prune's other queries).
      const info = await watched.db().admin().command({ buildInfo: 1 });
      if ("ferretdbVersion" in info)
        for (const { filter } of sent.filter((c) => "_id" in c.filter)) {
          const explained = (await repo.col.find(filter).explain()) as { queryPlanner: { Plan: string[] } };
          assert.match(explained.queryPlanner.Plan.join("\n"), /USING (COVERING )?INDEX/);
        }
    } finally {
      await watched.close();
      await repo.removeEndpoint("wh_dormant");
    }
  });

  it("one claimant wins a free endpoint; others take it over only after the lease expired", async () => {
    const ttl = 400;
    const repos = ["a", "b", "c"].map((n) => new LeaseRepo(db, n, ttl));
    await repos[0].ensureIndexes();
    const claims = await Promise.all(repos.map((r) => r.claim("wh_lease")));
    const winners = claims.filter(Boolean);
    assert.equal(winners.length, 1, "exactly one concurrent claim wins");
    const winnerIdx = claims.findIndex(Boolean);
    const held = claims[winnerIdx]!;
    const others = repos.filter((_, i) => i !== winnerIdx);
    for (const r of others) assert.equal(await r.claim("wh_lease"), null, "held lease is not taken");
    assert.equal(await repos[winnerIdx].renew(held), true);

    // The holder stalls past its lease: another node takes over, the stale holder cannot renew.
    await new Promise((r) => setTimeout(r, ttl + 100));
    const taken = await others[0].claim("wh_lease");
    assert.ok(taken && taken.term === held.term + 1, "expired lease taken over with the next term");
    assert.equal(await repos[winnerIdx].renew(held), false, "stale holder learns it lost the lease");

    // A graceful release lets the next claimant in at once.
    await others[0].release(taken);
    const next = await others[1].claim("wh_lease");
    assert.ok(next && next.term === taken.term + 1);
  });

  it("a release while a renewal is on its way leaves the lease expired (the renewal does not land after it)", async () => {
    const repo = new LeaseRepo(db, "rel", 60000);
    const lease = (await repo.claim("wh_release_race"))!;
    lease.validUntil = Date.now() + 1000; // due for renewal
    // The renewal's write is held on its way to the server until the release has been asked for.
    const updateOne = repo.col.updateOne.bind(repo.col);
    let letGo!: () => void;
    const held = new Promise<void>((r) => (letGo = r));
    let first = true;
    (repo.col as { updateOne: unknown }).updateOne = async (...args: Parameters<typeof updateOne>) => {
      if (first) {
        first = false;
        await held;
      }
      return updateOne(...args);
    };
    const renewing = repo.renew(lease);
    const releasing = repo.release(lease);
    letGo();
    await Promise.all([renewing, releasing]);
    const doc = await repo.col.findOne({ _id: `wh_release_race#${lease.term}` });
    assert.ok(doc!.expiresAt.getTime() <= Date.now(), `expires at ${doc!.expiresAt.toISOString()}`);
    const other = new LeaseRepo(db, "other", 60000);
    assert.ok(await other.claim("wh_release_race"), "another node takes it at once");
  });

  it("a renewal that lands after the lease ran out is not trusted: the lease is lost, and free for others", async () => {
    const repo = new LeaseRepo(db, "late", 60000);
    const lease = (await repo.claim("wh_late_renewal"))!;
    lease.validUntil = Date.now() + 200; // due for renewal, 200 ms left
    const ranOut = lease.validUntil;
    // The renewal's write reaches the server only after the lease ran out locally.
    const updateOne = repo.col.updateOne.bind(repo.col);
    let first = true;
    (repo.col as { updateOne: unknown }).updateOne = async (...args: Parameters<typeof updateOne>) => {
      if (first) {
        first = false;
        await waitFor(() => Date.now() > ranOut, { what: "the lease to run out" });
      }
      return updateOne(...args);
    };
    assert.equal(await repo.renew(lease), false);
    assert.equal(lease.validUntil, ranOut, "not extended");
    const other = new LeaseRepo(db, "other-late", 60000);
    const taken = await other.claim("wh_late_renewal");
    assert.ok(taken && taken.term === lease.term + 1, "another node takes it at once");
  });

  it("a restarted process with the same nodeID is another holder: it waits for the old lease", async () => {
    const before = new LeaseRepo(db, "same", 300);
    const after = new LeaseRepo(db, "same", 300);
    const held = await before.claim("wh_restart");
    assert.ok(held);
    assert.equal(await after.claim("wh_restart"), null);
    await new Promise((r) => setTimeout(r, 400));
    assert.ok(await after.claim("wh_restart"));
  });
});
