// The placement bucket lost and made again while every lease holds (an operator deleted the stream, or
// its server lost its storage): the table names no workspace, the owners stopped their sessions, and
// no new lease term comes to sweep the workspaces wanting to run. The reconciler sweeps them as it does
// in a term's first seconds, so each is claimed again (here by its last owner), however long after the
// term began.
import { strict as assert } from "node:assert";
import { loadConfig } from "../../../src/config.ts";
import { Reconciler, type ReconcileTarget } from "../../../src/placement/reconciler.ts";
import type { UnnamedWorkspace, WorkerOwnership } from "../../../src/placement/worker-ownership.ts";
import { waitFor } from "../../support/wait.ts";

describe("placement/reconciler: the placement bucket made again", () => {
  const realNow = Date.now;
  afterEach(() => (Date.now = realNow));

  it("sweeps every workspace wanting to run again, long after the lease term began", async () => {
    let now = realNow();
    Date.now = () => now;
    const records = new Map<string, { workspaceId: string; node: string; epoch: number }>();
    const claims: string[] = [];
    const mirror = {
      nodesKnown: true,
      synced: true,
      bucketResets: 0,
      get: (ws: string) => records.get(ws),
      entries: () => [...records.values()],
      isLive: () => true,
    };
    const placement = {
      nodeId: "n1",
      draining: false,
      liveness: { isCurrent: () => true, term: 1 },
      mirror,
      workers: () => [{ id: "n1" }, { id: "n2" }],
      heldWorkspaces: () => [],
      current: (ws: string) => (records.get(ws)?.node === "n1" ? records.get(ws) : null),
      async claim(ws: string, _rec: unknown, _forced: boolean, unnamed?: UnnamedWorkspace) {
        if (!unnamed?.lastOwners.includes("n1")) return null;
        claims.push(ws);
        const fence = { workspaceId: ws, node: "n1", epoch: now };
        records.set(ws, fence);
        return fence;
      },
      onChange: () => undefined,
      noteUnnamed: () => undefined,
    } as unknown as WorkerOwnership;
    // The account still names n1, its last owner: it is not "never placed".
    const target: ReconcileTarget = {
      has: () => false,
      local: () => [],
      start: async () => undefined,
      stopWorkspace: async () => 0,
      desiredRunning: async () => [],
      unplacedWorkspaces: async () => [],
      unnamedWorkspaces: async () => new Map([["ws1", { lastOwners: ["n1"], above: 5 }]]),
    };
    const logger = { info() {}, warn() {}, debug() {} };
    const r = new Reconciler(placement, target, { ...loadConfig(), reconcileMs: 3_600_000 }, logger);

    const internals = r as unknown as { running: boolean; passes: number };
    const idle = () => !internals.running;
    r.start();
    try {
      await waitFor(() => claims.length === 1 && idle(), { what: "the term's first sweep to claim ws1" });
      // A minute into the term, JetStream loses the bucket; the mirror finds it made again, empty.
      now += 60_000;
      records.clear();
      mirror.bucketResets++;
      for (let pass = 0; pass < 3; pass++) {
        const before = internals.passes;
        r.kick(0);
        await waitFor(() => internals.passes > before && idle(), { what: "a pass" });
      }
      assert.deepEqual(claims, ["ws1", "ws1"], "claimed again after the reset");
    } finally {
      await r.stop();
    }
  });
});
