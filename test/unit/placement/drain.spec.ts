// A drain's hand-offs: one that fails is reported while the others go on; an undrain stops the ones not
// begun; workspaces kept for want of a target go once a worker can take them; a claim that lands after
// the drain began is not kept on the draining node. The placement table and the lease are in memory.
import { strict as assert } from "node:assert";
import type { ServiceBroker } from "moleculer";
import { loadConfig } from "../../../src/config.ts";
import { WorkerOwnership, type SessionHost } from "../../../src/placement/worker-ownership.ts";
import { memoryPlacement } from "../../support/memory-placement.ts";
import { waitFor } from "../../support/wait.ts";

async function nodeHolding(count: number, handOverMs = 0) {
  const mem = memoryPlacement();
  const host: SessionHost = {
    local: () => [],
    size: 0,
    handOverWorkspace: () => new Promise<number>((r) => setTimeout(() => r(0), handOverMs)),
    stopWorkspace: async () => 0,
    stopAll: async () => undefined,
  };
  const ownership = new WorkerOwnership({
    broker: { nodeID: "n1" } as ServiceBroker,
    cfg: loadConfig(),
    placement: mem.placement,
    host,
    logger: { info() {}, debug() {}, warn() {} },
  });
  await ownership.start();
  const workspaces = Array.from({ length: count }, (_, i) => `ws${i}`);
  for (const ws of workspaces) assert.ok(await ownership.claim(ws, null, true));
  return { ...mem, ownership, workspaces };
}

describe("placement/worker-ownership: drains", () => {
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });

  it("a hand-off that fails is reported with its cause; the others go on", async () => {
    const { ownership, records, workers, failGet } = await nodeHolding(6);
    stops.push(() => ownership.stop());
    workers.push({ id: "n2" });
    failGet.add("ws3");
    const report = await ownership.drain();
    assert.equal(report.moved, 5);
    assert.equal(report.kept, 0);
    assert.deepEqual(report.failed, [{ workspaceId: "ws3", reason: "TIMEOUT (nats)" }]);
    assert.equal(records.get("ws3")?.node, "n1");
    assert.equal(records.get("ws0")?.node, "n2");
  });

  it("an undrain during a drain stops the hand-offs not begun yet", async () => {
    const { ownership, records, workers, workspaces } = await nodeHolding(12, 50);
    stops.push(() => ownership.stop());
    workers.push({ id: "n2" });
    const draining = ownership.drain();
    await waitFor(() => workspaces.some((ws) => records.get(ws)?.node === "n2"), { what: "a first move" });
    await ownership.undrain();
    const report = await draining;
    const stayed = workspaces.filter((ws) => ownership.current(ws));
    assert.ok(stayed.length >= 4, `hand-offs not begun were left: ${stayed.length} stayed`);
    assert.equal(report.moved + stayed.length, 12);
  });

  it("keeps what has nowhere to go, and hands it off once a worker can take it", async () => {
    const { ownership, records, workers, workspaces } = await nodeHolding(3);
    stops.push(() => ownership.stop());
    const report = await ownership.drain();
    assert.deepEqual([report.moved, report.kept], [0, 3]);
    workers.push({ id: "n2" });
    await ownership.continueDrain();
    assert.deepEqual(
      workspaces.map((ws) => records.get(ws)?.node),
      ["n2", "n2", "n2"],
    );
  });

  it("a claim whose compare-and-set lands after the drain began is not held", async () => {
    const { ownership, records, hooks } = await nodeHolding(0);
    stops.push(() => ownership.stop());
    let land!: () => void;
    hooks.beforeClaim = () => new Promise<void>((r) => (land = r));
    const claim = ownership.claim("late", null, true);
    await waitFor(() => land !== undefined, { what: "the claim's compare-and-set under way" });
    const drained = await ownership.drain();
    land();
    assert.equal(await claim, null);
    assert.equal(ownership.current("late"), null, "not held by the draining node");
    assert.equal(records.get("late")?.node, "n1", "the record its reconciler passes on");
    assert.equal(drained.moved, 0);
  });

  it("a hand-off to a node that is not a live worker taking workspaces is refused, nothing stopped", async () => {
    const { ownership, records, workers } = await nodeHolding(1);
    stops.push(() => ownership.stop());
    workers.push({ id: "n2" });
    for (const target of ["nobody", "n1"]) assert.equal(await ownership.handOff("ws0", target), false);
    assert.equal(records.get("ws0")?.node, "n1");
    assert.ok(ownership.current("ws0"), "still held here");
    assert.equal(await ownership.handOff("ws0", "n2"), true);
  });
});
