// A reconcile pass whose read of the owned workspaces' accounts fails (the database away past its
// retries) leaves that read due: the next pass, even a periodic one that would skip it, reads again,
// instead of leaving a restore after a failover for every tenth tick (30 s at the defaults).
import { strict as assert } from "node:assert";
import type { AccountDoc } from "../../../src/accounts/types.ts";
import { loadConfig } from "../../../src/config.ts";
import { Reconciler, type ReconcileTarget } from "../../../src/placement/reconciler.ts";
import type { WorkerOwnership } from "../../../src/placement/worker-ownership.ts";
import { waitFor } from "../../support/wait.ts";

describe("placement/reconciler: a failed read of the accounts", () => {
  it("is read again on the next pass, periodic or not", async () => {
    const fence = { node: "n1", epoch: 1 };
    // This node owns one workspace; nothing to claim or adopt (the mirror has not synced).
    const placement = {
      nodeId: "n1",
      draining: false,
      liveness: { isCurrent: () => true },
      mirror: { nodesKnown: false, synced: false },
      heldWorkspaces: () => ["ws"],
      current: () => fence,
      onChange: () => undefined,
      noteUnnamed: () => undefined,
    } as unknown as WorkerOwnership;
    const doc = { _id: "acc1", workspaceId: "ws", node: "n0", epoch: 0, status: "connected" } as AccountDoc;
    let reads = 0;
    const started: string[] = [];
    const target: ReconcileTarget = {
      has: () => false,
      local: () => [],
      start: async (d) => started.push(d._id),
      stopWorkspace: async () => 0,
      async desiredRunning() {
        if (++reads === 1) throw new Error("database unreachable");
        return [doc];
      },
    };
    const cfg = { ...loadConfig(), reconcileMs: 3_600_000 };
    const logger = { info() {}, warn() {}, debug() {} };
    const r = new Reconciler(placement, target, cfg, logger);
    const idle = () => !(r as unknown as { running: boolean }).running;
    r.start();
    try {
      await waitFor(() => reads === 1 && idle(), { what: "the first pass, its read failed" });
      // A periodic tick's pass (it reads the accounts only every tenth time).
      r.kick(0, { readDatabase: false });
      await waitFor(() => started.length === 1, { what: "the account started by the next pass" });
      assert.equal(reads, 2);
      assert.deepEqual(started, ["acc1"]);
    } finally {
      await r.stop();
    }
  });
});
