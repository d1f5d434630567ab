// A hand-off (drain, rebalance) of a workspace its owner holds only on the record: after a lease
// lapse and renewal, a node's records still name it but it holds none of them in its new term until
// the reconciler adopts them. A rebalance planned from the records must still move them, and must
// never move what another node owns. One WorkerOwnership on the run's NATS, no reconciler, no sessions.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { ServiceBroker } from "moleculer";
import { ClusterPlacement } from "../../../src/placement/kv.ts";
import { WorkerOwnership, type SessionHost } from "../../../src/placement/worker-ownership.ts";
import { testConfig } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";

describe("placement: hand-off of a workspace recorded for its owner", function () {
  this.timeout(30000);
  let placement: ClusterPlacement;
  let ownership: WorkerOwnership;
  const stopped: string[] = [];
  /** While set, stopping a workspace waits for it (a hand-off caught midway). */
  let stopGate: Promise<void> | null = null;
  // This node runs no sessions: the host only records what placement asked of it.
  const host: SessionHost = {
    local: () => [],
    size: 0,
    handOverWorkspace: (ws) => host.stopWorkspace(ws),
    stopWorkspace: async (ws) => {
      stopped.push(ws);
      await stopGate;
      return 0;
    },
    stopAll: async () => undefined,
  };

  const namespace = `ho${randomBytes(4).toString("hex")}`;

  before(async () => {
    const cfg = testConfig({ namespace, nodeId: "h1" });
    placement = await ClusterPlacement.connect(cfg);
    const broker = new ServiceBroker({ nodeID: "h1", logger: false });
    ownership = new WorkerOwnership({ broker, cfg, placement, host, logger: broker.getLogger("test") });
    await ownership.start();
  });
  after(async () => {
    await ownership?.stop();
    await placement?.close();
  });

  /** A second worker, h2, leasing on the same buckets (a hand-off's target must be a live worker);
   * not reachable over the bus from h1's broker. Returns its stop. */
  async function liveH2(): Promise<{ ownership2: WorkerOwnership; stop: () => Promise<void> }> {
    const cfg2 = testConfig({ namespace, nodeId: "h2" });
    const placement2 = await ClusterPlacement.connect(cfg2);
    const broker2 = new ServiceBroker({ nodeID: "h2", logger: false });
    const ownership2 = new WorkerOwnership({
      broker: broker2,
      cfg: cfg2,
      placement: placement2,
      host,
      logger: broker2.getLogger("test"),
    });
    const stop = async () => {
      await ownership2.stop();
      await placement2.close();
    };
    try {
      await ownership2.start();
      await waitFor(() => placement.mirror.isLive("h2"), { what: "h1 to see h2's lease" });
    } catch (err) {
      await stop();
      throw err;
    }
    return { ownership2, stop };
  }

  /** Renewals stop until the lease lapses (the node fences itself), then start again: a new term. */
  async function newLeaseTerm(): Promise<void> {
    ownership.liveness.pause();
    await waitFor(() => !ownership.liveness.isCurrent(), { what: "h1's lease to lapse" });
    ownership.liveness.resume();
    await waitFor(() => ownership.liveness.isCurrent(), { what: "h1's lease to be taken again" });
  }

  it("adopts a workspace recorded for it but not held in this lease term, then hands it off", async () => {
    const claimed = await ownership.claim("ws-a", null, true);
    assert.ok(claimed && ownership.current("ws-a"), "h1 holds ws-a");

    const term = ownership.liveness.term;
    await newLeaseTerm();
    assert.ok(ownership.liveness.term > term, "a new lease term");
    assert.equal(ownership.current("ws-a"), null, "not held in the new term");
    assert.equal((await placement.table.get("ws-a"))?.node, "h1", "still recorded for h1");

    const h2 = await liveH2();
    try {
      assert.equal(await ownership.handOff("ws-a", "h2"), true);
    } finally {
      await h2.stop();
    }
    const rec = await placement.table.get("ws-a");
    assert.equal(rec?.node, "h2");
    assert.ok(rec!.epoch > claimed.epoch + 1, "adopted (epoch + 1), then handed off (epoch + 1)");
    assert.ok(stopped.includes("ws-a"), "its sessions were stopped here before the record moved");
  });

  it("a draining node hands off only what it holds (its reconciler passes the rest on)", async () => {
    const claimed = await ownership.claim("ws-c", null, true);
    assert.ok(claimed);
    await newLeaseTerm();
    ownership.draining = true;
    const h2 = await liveH2();
    try {
      assert.equal(await ownership.handOff("ws-c", "h2"), false);
      assert.deepEqual(await placement.table.get("ws-c"), claimed, "ws-c untouched");
    } finally {
      ownership.draining = false;
      await h2.stop();
    }
  });

  it("a draining node's call for a record of its own it no longer holds does not take it back", async () => {
    const claimed = await ownership.claim("ws-e", null, true);
    assert.ok(claimed);
    await newLeaseTerm();
    ownership.draining = true;
    try {
      // No other worker to pass it on to: the call is refused (503, retried by the client), not run here.
      await assert.rejects(ownership.route("ws-e", 0), { type: "WORKSPACE_UNAVAILABLE" });
      await assert.rejects(ownership.acquire("ws-e"), { type: "WORKSPACE_UNAVAILABLE" });
      assert.equal(ownership.current("ws-e"), null, "not held");
      assert.deepEqual(await placement.table.get("ws-e"), claimed, "ws-e untouched");
    } finally {
      ownership.draining = false;
    }
  });

  it("a call forwarded here for a workspace passed on to this node runs here while its mirror still names the old owner", async () => {
    const h2 = await liveH2();
    try {
      const onH2 = await placement.table.claim("ws-f", "h2", null);
      assert.ok(onH2);
      // h2, draining, passes it on to h1 and forwards the call; h1's mirror has not heard yet.
      const passed = await placement.table.claim("ws-f", "h1", onH2);
      assert.ok(passed);
      await waitFor(() => placement.mirror.get("ws-f")?.node === "h1", { what: "the watch to deliver" });
      // Put back as it was before (the mirror takes no older revision over a newer one).
      placement.mirror.apply("ws-f", null);
      placement.mirror.apply("ws-f", onH2);
      assert.equal(placement.mirror.get("ws-f")?.node, "h2");

      assert.equal(await ownership.route("ws-f", 1), null, "run here");
      assert.ok(ownership.current("ws-f"), "held by h1");
      assert.ok((await placement.table.get("ws-f"))!.epoch > passed.epoch, "adopted");
    } finally {
      await h2.stop();
    }
  });

  it("a drained node claims no new workspace until undrained", async () => {
    await ownership.drain();
    try {
      assert.equal(await ownership.claim("ws-new", null), null, "draining: no claim");
    } finally {
      assert.deepEqual(await ownership.undrain(), { nodeId: "h1", draining: false });
    }
    assert.ok(await ownership.claim("ws-new", null), "undrained: claimed");
    assert.ok(ownership.current("ws-new"));
  });

  it("nothing claims a workspace while it is handed off (the reconciler would adopt it midway)", async () => {
    const claimed = await ownership.claim("ws-d", null, true);
    assert.ok(claimed && ownership.current("ws-d"));
    let open!: () => void;
    stopGate = new Promise((r) => (open = r));
    const h2 = await liveH2();
    try {
      const handing = ownership.handOff("ws-d", "h2");
      await waitFor(() => stopped.includes("ws-d"), { what: "the hand-off to stop ws-d's sessions" });
      // What the reconciler does for a workspace recorded here and not held: adopt it.
      assert.equal(await ownership.claim("ws-d", null), null, "no claim during the hand-off");
      open();
      assert.equal(await handing, true);
    } finally {
      // Opened on a failure too, so that the hand-off in flight ends before the next test.
      open();
      stopGate = null;
      await h2.stop();
    }
    const rec = await placement.table.get("ws-d");
    assert.equal(rec?.node, "h2");
    assert.equal(rec?.epoch, claimed.epoch + 1, "one compare-and-set: the hand-off's");
  });

  it("hands off nothing another node owns", async () => {
    const other = await placement.table.claim("ws-b", "h3", null);
    assert.ok(other);
    await waitFor(() => placement.mirror.get("ws-b"), { what: "ws-b in the mirror" });
    const h2 = await liveH2();
    try {
      assert.equal(await ownership.handOff("ws-b", "h2"), false);
    } finally {
      await h2.stop();
    }
    assert.deepEqual(await placement.table.get("ws-b"), other, "ws-b untouched");
  });
});
