// A placement layer in memory for unit tests of WorkerOwnership: a placement table with
// compare-and-set on revisions, its mirror, and a nodes bucket that takes every write; `leases` are the
// other nodes whose lease key is there, `workers` the live ones the mirror shows; `failGet` makes reads
// of those workspaces fail (NATS away for them), `beforeClaim` runs before each compare-and-set.
import type { ClusterPlacement } from "../../src/placement/kv.ts";
import type { PlacementNode } from "../../src/placement/hrw.ts";
import type { PlacementEntry } from "../../src/placement/placement-table.ts";

export function memoryPlacement() {
  const records = new Map<string, PlacementEntry>();
  const leases = new Set<string>();
  const workers: PlacementNode[] = [];
  const failGet = new Set<string>();
  const hooks: { beforeClaim?: () => Promise<void> } = {};
  let revision = 0;
  const table = {
    get: async (ws: string) => {
      if (failGet.has(ws)) throw new Error("TIMEOUT (nats)");
      return records.get(ws) ?? null;
    },
    claim: async (ws: string, node: string, previous: PlacementEntry | null, above = 0) => {
      await hooks.beforeClaim?.();
      if ((records.get(ws)?.revision ?? null) !== (previous?.revision ?? null)) return null;
      const epoch = previous ? previous.epoch + 1 : above + 1;
      const entry = { workspaceId: ws, node, epoch, since: Date.now(), revision: ++revision };
      records.set(ws, entry);
      return entry;
    },
  };
  const mirror = {
    on: () => undefined,
    off: () => undefined,
    pollNodes: async () => undefined,
    get: (ws: string) => records.get(ws),
    owner: (ws: string) => records.get(ws)?.node,
    apply: () => undefined,
    workers: () => workers,
    loads: () => new Map<string, number>(),
    isLive: (node: string) => workers.some((w) => w.id === node),
    isDraining: () => false,
    bucketResets: 0,
  };
  const value = new TextEncoder().encode("{}");
  const nodesKv = {
    put: async () => ++revision,
    update: async () => ++revision,
    delete: async () => undefined,
    get: async (node: string) => (leases.has(node) ? { operation: "PUT", value } : null),
  };
  const placement = { table, mirror, nodesKv, leaseTtlMs: 60_000 } as unknown as ClusterPlacement;
  return { placement, records, leases, workers, failGet, hooks };
}
