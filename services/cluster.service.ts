// `cluster`: the operators' view and levers of placement (DESIGN.md, "Drain and rebalance"). It runs
// on every worker, beside `session` (which creates it), and reads the node's placement layer:
//   cluster.nodes {}                 → {items: NodeView[]}
//   cluster.placement {workspaceId}  → {workspaceId, node, epoch, since} (404 when unplaced)
//   cluster.drain {nodeId}           → {nodeId, moved, kept, failed, sessions} (runs on that node)
//   cluster.rebalance {max?}         → {moved: [{workspaceId, from, to}], planned, failed: [{…, reason}]}
import type { Context, Service, ServiceSchema } from "moleculer";
import { WORKSPACE_ID_PATTERN } from "../src/accounts/types.ts";
import { configOf } from "../src/config.ts";
import { NotFoundError } from "../src/errors.ts";
import { HAND_OVER_KILL_MS, HAND_OVER_STOP_MS } from "../src/placement/hand-over.ts";
import { placementOf } from "../src/placement/kv.ts";
import type { NodeRecord } from "../src/placement/liveness.ts";
import { workerNodeOf, type WorkerNode } from "../src/placement/worker-node.ts";

/** Upper bound of one `drain` call (a few seconds per hundred sessions; longer than requestTimeout). */
const DRAIN_TIMEOUT_MS = 10 * 60 * 1000;

/** A node as `GET /api/v1/cluster/nodes` lists it; non-workers have capacity 0 and no lease. */
export type NodeView = Omit<NodeRecord, "pid" | "renewedAt"> & {
  pid: number | null;
  worker: boolean;
  renewedAt: number | null;
};

/** How long one hand-off of a rebalance may take: its node's bounds for the stop of the workspace's
 * sessions and for their kill (hand-over.ts), and time left for the compare-and-set (30 s). */
const HANDOFF_TIMEOUT_MS = HAND_OVER_STOP_MS + HAND_OVER_KILL_MS + 5000;

/** Upper bound of one `rebalance` call, whose hand-offs run one after another: 20 at their slowest,
 * hundreds at a second each. Callers that set no timeout (the gateway, the REPL) wait this long. */
const REBALANCE_TIMEOUT_MS = 10 * 60 * 1000;

/** Kept at the end of a rebalance's time to answer before the caller gives up on it. */
const ANSWER_MARGIN_MS = 2000;

/** When a call must have answered by (epoch ms), from the timeout Moleculer gave it (none: never). */
function answerDeadline(ctx: Context): number {
  const timeout = Number(ctx.options.timeout ?? 0);
  return timeout > 0 ? Date.now() + timeout - ANSWER_MARGIN_MS : Infinity;
}

/** Runs `run` on the worker node `ctx.params.nodeId` names: here, or forwarded there as `action`. A
 * node that is gone, unknown or no worker (a gateway: no `action` there) is a 404. */
async function onItsNode<T>(
  svc: Service,
  ctx: Context<{ nodeId: string }>,
  action: string,
  run: (node: WorkerNode) => Promise<T>,
): Promise<T | unknown> {
  const { nodeId } = ctx.params;
  if (nodeId !== svc.broker.nodeID) {
    // Asked of the action's endpoint, not the node alone: a call to a live node without it would fail
    // as "no node can serve it" (503, try again), which no retry changes.
    if (!svc.broker.registry.getActionEndpointByNodeId(action, nodeId))
      throw new NotFoundError("Node", nodeId);
    return ctx.call(action, { nodeId }, { nodeID: nodeId });
  }
  const node = workerNodeOf(svc.broker);
  if (!node) throw new NotFoundError("Node", nodeId);
  return run(node);
}

const ClusterService: ServiceSchema = {
  name: "cluster",

  actions: {
    nodes: {
      params: {},
      handler(this: Service): { items: NodeView[] } {
        const workers = workerNodeOf(this.broker)?.ownership.nodes() ?? [];
        const seen = new Set(workers.map((n) => n.nodeId));
        const items: NodeView[] = workers.map((n) => ({ ...n, worker: true }));
        for (const node of this.broker.registry.nodes.list({ onlyAvailable: true, withServices: true })) {
          if (seen.has(node.id)) continue;
          const services = (node.services ?? []) as { name: string }[];
          items.push({
            nodeId: node.id,
            pid: null,
            host: node.hostname ?? "",
            services: services.map((s) => String(s.name)).filter((n) => !n.startsWith("$")),
            capacity: 0,
            sessions: 0,
            draining: false,
            worker: false,
            renewedAt: null,
          });
        }
        items.sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
        return { items };
      },
    },

    placement: {
      params: { workspaceId: { type: "string", pattern: WORKSPACE_ID_PATTERN } },
      async handler(this: Service, ctx: Context<{ workspaceId: string }>) {
        const placement = placementOf(this.broker);
        const ws = ctx.params.workspaceId;
        const rec = placement?.mirror.get(ws) ?? (await placement?.table.get(ws));
        if (!rec) throw new NotFoundError("Placement", ws);
        return { workspaceId: ws, node: rec.node, epoch: rec.epoch, since: rec.since };
      },
    },

    drain: {
      ...({ timeout: DRAIN_TIMEOUT_MS } as object), // honoured by moleculer's timeout middleware; untyped
      params: { nodeId: { type: "string", min: 1 } },
      handler(this: Service, ctx: Context<{ nodeId: string }>) {
        return onItsNode(this, ctx, "cluster.drain", (node) => node.ownership.drain());
      },
    },

    undrain: {
      params: { nodeId: { type: "string", min: 1 } },
      handler(this: Service, ctx: Context<{ nodeId: string }>) {
        return onItsNode(this, ctx, "cluster.undrain", (node) => node.ownership.undrain());
      },
    },

    rebalance: {
      ...({ timeout: REBALANCE_TIMEOUT_MS } as object), // as drain's: honoured by moleculer; untyped
      params: { max: { type: "number", integer: true, positive: true, optional: true } },
      async handler(this: Service, ctx: Context<{ max?: number }>) {
        const node = workerNodeOf(this.broker);
        if (!node) return { moved: [], planned: 0, failed: [] };
        const plan = node.ownership.rebalancePlan(ctx.params.max ?? configOf(this.broker).rebalanceBatch);
        const deadline = answerDeadline(ctx);
        const moved: typeof plan = [];
        const failed: ((typeof plan)[number] & { reason: string })[] = [];
        for (const step of plan) {
          // A hand-off cut short may still finish on its node after being reported failed: start only
          // those that have their whole time, and leave the rest for the next rebalance.
          if (Date.now() + HANDOFF_TIMEOUT_MS > deadline) {
            failed.push({ ...step, reason: "not tried: the rebalance ran out of time (run it again)" });
            continue;
          }
          const target = { workspaceId: step.workspaceId, target: step.to };
          try {
            // A hand-off flushes and stops the workspace's sessions first: give it more than a call.
            const opts = { nodeID: step.from, timeout: HANDOFF_TIMEOUT_MS };
            if (await ctx.call("session.handoff", target, opts)) moved.push(step);
            else
              failed.push({
                ...step,
                reason: `${step.from} no longer held it (moved or fenced meanwhile), or ${step.to} no longer takes workspaces`,
              });
          } catch (err) {
            failed.push({ ...step, reason: (err as Error).message });
          }
        }
        if (failed.length > 0)
          this.logger.warn(`rebalance: ${failed.length} of ${plan.length} moves failed: ${failed[0].reason}`);
        return { moved, planned: plan.length, failed };
      },
    },
  },
};

export default ClusterService;
