// Which webhooks node records which workspaces (src/webhooks/recorder-slots.ts), with the slot leases
// in the real MongoDB-wire server: the slots split between the nodes it sees, never held by two at once,
// handed over at a stop at once and after a crash once the lease expired.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { MongoClient, type Db } from "mongodb";
import { LeaseRepo, RECORDERS_COLLECTION } from "../../../src/store/webhook-leases-repo.ts";
import { RecorderSlots, slotOf } from "../../../src/webhooks/recorder-slots.ts";
import { mongoUrlFor } from "../../support/env.ts";
import { waitFor } from "../../support/wait.ts";

const SLOTS = 8;
const quiet = { debug() {}, info() {}, warn() {}, error() {} } as any;

describe("webhooks: recorder slots on the real MongoDB-wire server", function () {
  this.timeout(30000);
  let client: MongoClient;
  let db: Db;
  let running: RecorderSlots[];
  /** The webhooks nodes every RecorderSlots of a test sees. */
  let nodes: number;
  let claimed: string[];

  before(async () => {
    client = await MongoClient.connect(mongoUrlFor(`whslots${randomBytes(3).toString("hex")}`));
    db = client.db();
  });
  after(async () => client.close());
  beforeEach(async () => {
    running = [];
    nodes = 1;
    claimed = [];
    await db.collection(RECORDERS_COLLECTION).deleteMany({});
  });
  afterEach(async () => {
    await Promise.allSettled(running.map((s) => s.stop()));
  });

  async function startSlots(name: string, ttlMs = 3000): Promise<RecorderSlots> {
    const leases = new LeaseRepo(db, name, ttlMs, RECORDERS_COLLECTION);
    await leases.ensureIndexes();
    const slots: RecorderSlots = new RecorderSlots(
      leases,
      { leaseTtlMs: ttlMs, tickMs: 50, slots: SLOTS },
      () => nodes,
      async (slot) => {
        // Told before the slot counts as held.
        assert.equal(slots.heldSlots().includes(slot), false);
        claimed.push(`${name}:${slot}`);
      },
      quiet,
    );
    await slots.start();
    running.push(slots);
    return slots;
  }

  const disjoint = (a: RecorderSlots, b: RecorderSlots) =>
    a.heldSlots().every((slot) => !b.heldSlots().includes(slot));

  it("a node alone holds every slot; a second one gets half, never one the first still holds", async () => {
    const a = await startSlots("a");
    assert.deepEqual(a.heldSlots(), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.equal(claimed.length, SLOTS, "each claim was announced");
    nodes = 2;
    const b = await startSlots("b");
    let overlaps = 0;
    await waitFor(
      () => {
        if (!disjoint(a, b)) overlaps++;
        return a.heldSlots().length === SLOTS / 2 && b.heldSlots().length === SLOTS / 2;
      },
      { what: "the slots split in two", intervalMs: 5 },
    );
    assert.equal(overlaps, 0, "no slot held by both");
    assert.deepEqual([...a.heldSlots(), ...b.heldSlots()].sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
    // Every workspace has exactly one recorder.
    for (const ws of ["ws1", "ws2", "acme", "w".repeat(40)]) {
      assert.equal(Number(a.holds(ws)) + Number(b.holds(ws)), 1, ws);
      assert.equal(a.holds(ws), a.heldSlots().includes(slotOf(ws, SLOTS)));
    }
  });

  it("a stopped node's slots go to the other at its next tick", async () => {
    nodes = 2;
    const a = await startSlots("a");
    const b = await startSlots("b");
    await waitFor(() => a.heldSlots().length + b.heldSlots().length === SLOTS, { what: "every slot held" });
    nodes = 1;
    await a.stop();
    await waitFor(() => b.heldSlots().length === SLOTS, { what: "b to hold every slot", timeoutMs: 2000 });
  });

  it("a crashed node's slots are taken only once its leases expired", async () => {
    const ttlMs = 800;
    const a = await startSlots("a", ttlMs);
    // A crash: the ticks stop, nothing is released.
    (a as any).stopped = true;
    clearInterval((a as any).timer);
    running.splice(running.indexOf(a), 1);
    const crashedAt = Date.now();
    const b = await startSlots("b", ttlMs);
    assert.deepEqual(b.heldSlots(), [], "the crashed node's leases still run");
    await waitFor(() => b.heldSlots().length === SLOTS, { what: "b to take every slot", timeoutMs: 5000 });
    assert.ok(Date.now() - crashedAt >= ttlMs - 100, "taken before the leases expired");
    assert.equal(a.holds("ws1"), false, "the crashed node's own view ends with its lease");
  });
});
