// A hand-off whose sessions never finish stopping (a final auth-state save held by a database that
// accepts and never answers) must not keep the workspace handed over, and so run nowhere, for ever:
// past its bound the sessions are killed and the record moves to the target all the same, which then
// starts them. The placement table and the lease are in memory: the hand-off's own steps are under test.
import { strict as assert } from "node:assert";
import type { ServiceBroker } from "moleculer";
import { loadConfig } from "../../../src/config.ts";
import { WorkerOwnership, type SessionHost } from "../../../src/placement/worker-ownership.ts";
import { stopWithin } from "../../../src/placement/hand-over.ts";
import { withTimeout } from "../../../src/with-timeout.ts";
import { memoryPlacement } from "../../support/memory-placement.ts";

/** This node with one workspace, `ws`, whose graceful stop never ends; `killHangs`: nor does its kill
 * (a webjs forced stop still waits for the save under way). */
async function holdingHungWorkspace(killHangs: boolean) {
  const { placement, records, workers } = memoryPlacement();
  workers.push({ id: "n2" }); // the target, a live worker
  const killed: string[] = [];
  const warnings: string[] = [];
  const host: SessionHost = {
    local: () => [],
    size: 1,
    handOverWorkspace: () => new Promise<number>(() => undefined),
    stopWorkspace: async (ws) => {
      killed.push(ws);
      if (killHangs) await new Promise(() => undefined);
      return 1;
    },
    stopAll: async () => undefined,
  };
  const logger = { info() {}, debug() {}, warn: (m: unknown) => void warnings.push(String(m)) };
  const ownership = new WorkerOwnership({
    broker: { nodeID: "n1" } as ServiceBroker,
    cfg: loadConfig(),
    placement,
    host,
    logger,
    handOver: { stopMs: 100, killMs: 100 },
  });
  await ownership.start();
  const claimed = await ownership.claim("ws", null, true);
  assert.ok(claimed && ownership.current("ws"), "n1 holds ws");
  return { ownership, records, claimed, killed, warnings };
}

describe("placement/worker-ownership: a hand-off whose sessions never finish stopping", () => {
  for (const killHangs of [false, true]) {
    it(`kills them past its bound and moves the workspace on${killHangs ? " (the kill hanging too)" : ""}`, async () => {
      const { ownership, records, claimed, killed, warnings } = await holdingHungWorkspace(killHangs);
      try {
        const moved = await withTimeout(ownership.handOff("ws", "n2"), 2000);
        assert.equal(moved, true, "the hand-off settled within its bounds and moved the workspace");
        assert.deepEqual(killed, ["ws"], "its sessions were killed");
        assert.equal(records.get("ws")?.node, "n2");
        assert.equal(records.get("ws")?.epoch, claimed.epoch + 1, "one compare-and-set: the hand-off's");
        assert.equal(ownership.handingOff("ws"), null, "no longer handed over");
        assert.ok(
          warnings.some((w) => w.includes("workspace ws") && w.includes("did not close and save")),
          `a warning names the workspace and the cause: ${warnings.join(" | ")}`,
        );
      } finally {
        await ownership.stop();
      }
    });
  }

  it("a node's stop of what it kept is bounded the same way (stopWithin)", async () => {
    const warnings: string[] = [];
    let killed = false;
    await withTimeout(
      stopWithin(
        {
          what: "Stop of n1",
          graceful: () => new Promise(() => undefined),
          kill: async () => void (killed = true),
          then: "letting the lease go",
        },
        { stopMs: 50, killMs: 50 },
        { warn: (m: unknown) => void warnings.push(String(m)) },
      ),
      2000,
    );
    assert.ok(killed, "killed past the bound");
    assert.match(warnings.join(" | "), /^Stop of n1: .* killing them and letting the lease go$/);
  });
});
