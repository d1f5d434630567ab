// The two MongoDB building blocks of webhooks against the real MongoDB-wire server (FerretDB, which has
// no atomic conditional update under concurrency): idempotent outbox recording from racing nodes, and
// per-endpoint leases claimed by inserting terms.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { MongoClient, type Db } from "mongodb";
import { LeaseRepo } from "../../../src/store/webhook-leases-repo.ts";
import { OutboxRepo, type RecordedEvent } from "../../../src/store/webhook-outbox-repo.ts";
import type { EndpointDoc } from "../../../src/webhooks/types.ts";
import { mongoUrlFor } from "../../support/env.ts";

function endpoint(id: string): EndpointDoc {
  const now = new Date();
  return {
    _id: id,
    workspaceId: "ws1",
    url: "http://127.0.0.1:1/",
    secret: "s",
    events: ["*"],
    enabled: true,
    createdAt: now,
    updatedAt: now,
  };
}

function event(accountId: string, n: number): RecordedEvent {
  return {
    eventId: `evt_${accountId}_${n}`,
    event: "account.status",
    workspaceId: "ws1",
    accountId,
    payload: { n },
  };
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
        const rows = await nodes[0].col
          .find({ endpointId: ep._id, accountId: acc })
          .sort({ seq: 1 })
          .toArray();
        assert.deepEqual(
          rows.map((r) => r.eventId),
          stream.filter((e) => e.accountId === acc).map((e) => e.eventId),
          `${ep._id}/${acc}: one row per event, seq in stream order`,
        );
        assert.deepEqual(
          rows.map((r) => r.seq),
          rows.map((_, i) => i + 1),
        );
      }
    }
    const heads = await nodes[1].pendingHeads("wh_race1");
    assert.deepEqual(heads.map((h) => [h.accountId, h.seq]).sort(), [
      ["acc_x", 1],
      ["acc_y", 1],
    ]);
  });

  it("pruning deletes old finished rows but keeps each queue's last row, so seqs keep increasing", async () => {
    const repo = new OutboxRepo(db, "n1");
    const endpoints = [endpoint("wh_prune")];
    for (let i = 0; i < 4; i++) await repo.record(event("acc_p", 100 + i), endpoints);
    const rows = await repo.col.find({ endpointId: "wh_prune" }).sort({ seq: 1 }).toArray();
    await repo.markDelivered(rows[0]._id, 1, 200);
    await repo.markFailed(rows[1]._id, {
      attempts: 3,
      error: "HTTP 500",
      statusCode: 500,
      nextAttemptAt: null,
    });
    await repo.markDelivered(rows[3]._id, 1, 200);
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
