// Placement for the `session` service (DESIGN.md, "Placement and routing"): the node's lease, fenced
// ownership handed to the session runtime, the reconciler, routing of calls that reached a non-owner,
// and the cluster-facing actions (names in src/placement/actions.ts):
//   session.ping {workspaceId}            → {node, epoch, forwardedBy} (a routing probe, sharded)
//   session.nodes {}                       → {items: NodeView[]}
//   session.placement {workspaceId}        → {workspaceId, node, epoch, since} (404 when unplaced)
//   session.drain {nodeId}                 → {nodeId, moved, kept, sessions} (runs on that node)
//   session.rebalance {max?}               → {moved: [{workspaceId, from, to}]}
//   session.handoff {workspaceId, target}  (internal: called on the owner by rebalance)
// The service calls `startPlacement()` at the end of its `started` (after its runtime exists) and
// `stopPlacement()` first in its `stopped` (the node drains before its engines stop).
import type { Context, Service, ServiceSchema } from "moleculer";
import type { AccountDoc } from "../src/accounts/types.ts";
import { WORKSPACE_ID_PATTERN } from "../src/accounts/types.ts";
import { configOf } from "../src/config.ts";
import { NotFoundError } from "../src/errors.ts";
import type { SessionRuntime } from "../src/session/runtime.ts";
import type { NodeRecord } from "../src/placement/liveness.ts";
import { placementOf } from "../src/placement/kv.ts";
import { WORKSPACE_SHARD } from "../src/placement/strategy.ts";
import { Reconciler } from "../src/placement/reconciler.ts";
import { WorkerOwnership } from "../src/placement/worker-ownership.ts";
import type { AccountsRepo } from "../src/store/accounts-repo.ts";

/** Upper bound of one `drain` call. */
const DRAIN_TIMEOUT_MS = 10 * 60 * 1000;

/** Meta key counting the forwards of a call (a service may name it in `settings.forwardedMetaKey`). */
export const FORWARDED_META = "placementForwarded";

function hopsKey(service: unknown): string {
  return (
    (service as { settings?: { forwardedMetaKey?: string } }).settings?.forwardedMetaKey ?? FORWARDED_META
  );
}

/** Forwards so far (older nodes sent `true` for one). */
function hopsOf(ctx: Context, key: string): number {
  const v = (ctx.meta as Record<string, unknown>)[key];
  return typeof v === "number" ? v : v === true ? 1 : 0;
}

/** A node as `GET /api/v1/cluster/nodes` lists it; non-workers have capacity 0 and no lease. */
export type NodeView = Omit<NodeRecord, "pid" | "renewedAt"> & {
  pid: number | null;
  worker: boolean;
  renewedAt: number | null;
};

/** Where a `session.ping` ran: the owner, its epoch, and the node that forwarded it (if any). */
export interface PingResult {
  node: string;
  epoch: number | null;
  forwardedBy: string | null;
}

export interface PlacementVars {
  runtime: SessionRuntime;
  repo: AccountsRepo;
  workerPlacement?: WorkerOwnership;
  reconciler?: Reconciler;
}

export interface PlacementMethods {
  startPlacement(): Promise<void>;
  stopPlacement(): Promise<void>;
  /** Where a call must run: null → here; a node id → forward there (`forwardTo`). */
  routeToOwner(ctx: Context<{ workspaceId: string }>): Promise<string | null>;
  /** Calls the same action on `nodeID`, counting the hop (a call is forwarded at most twice). */
  forwardTo(ctx: Context<{ workspaceId: string }>, nodeID: string): Promise<unknown>;
}

type This = Service & PlacementVars & PlacementMethods;

export function placementMixin(): Partial<ServiceSchema> {
  const schema: Partial<ServiceSchema<any, PlacementMethods, PlacementVars>> = {
    actions: {
      /** Routing probe (cheap, no account): runs on the workspace's owner like every session.* call. */
      ping: {
        strategy: WORKSPACE_SHARD,
        params: { workspaceId: { type: "string", pattern: WORKSPACE_ID_PATTERN } },
        async handler(this: This, ctx: Context<{ workspaceId: string }>): Promise<PingResult> {
          const owner = await this.routeToOwner(ctx);
          if (owner)
            return { ...((await this.forwardTo(ctx, owner)) as PingResult), forwardedBy: this.broker.nodeID };
          const fence = this.workerPlacement?.current(ctx.params.workspaceId);
          return { node: this.broker.nodeID, epoch: fence?.epoch ?? null, forwardedBy: null };
        },
      },

      nodes: {
        params: {},
        handler(this: This): { items: NodeView[] } {
          const workers = this.workerPlacement?.nodes() ?? [];
          const seen = new Set(workers.map((n) => n.nodeId));
          const items: NodeView[] = workers.map((n) => ({ ...n, worker: true }));
          for (const node of this.broker.registry.nodes.list({ onlyAvailable: true, withServices: true })) {
            if (seen.has(node.id)) continue;
            items.push({
              nodeId: node.id,
              pid: null,
              host: node.hostname ?? "",
              services: (node.services ?? [])
                .map((s: Record<string, any>) => String(s.name))
                .filter((n: string) => !n.startsWith("$")),
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
        async handler(this: This, ctx: Context<{ workspaceId: string }>) {
          const placement = placementOf(this.broker);
          const ws = ctx.params.workspaceId;
          const rec = placement?.mirror.get(ws) ?? (await placement?.table.get(ws));
          if (!rec) throw new NotFoundError("Placement", ws);
          return { workspaceId: ws, node: rec.node, epoch: rec.epoch, since: rec.since };
        },
      },

      drain: {
        // A drain answers once every workspace is handed off (a few seconds per hundred sessions), which
        // outlasts the broker's request timeout; callers (REST, REPL) get this action's own timeout.
        ...({ timeout: DRAIN_TIMEOUT_MS } as object), // honoured by moleculer's timeout middleware; untyped
        params: { nodeId: { type: "string", min: 1 } },
        async handler(this: This, ctx: Context<{ nodeId: string }>) {
          const { nodeId } = ctx.params;
          if (nodeId !== this.broker.nodeID) {
            if (!this.broker.registry.nodes.get(nodeId)?.available) throw new NotFoundError("Node", nodeId);
            return ctx.call(`${this.name}.drain`, { nodeId }, { nodeID: nodeId });
          }
          if (!this.workerPlacement) throw new NotFoundError("Node", nodeId);
          return this.workerPlacement.drain();
        },
      },

      rebalance: {
        params: { max: { type: "number", integer: true, positive: true, optional: true } },
        async handler(this: This, ctx: Context<{ max?: number }>) {
          const wp = this.workerPlacement;
          if (!wp) return { moved: [] };
          const plan = wp.rebalancePlan(ctx.params.max ?? configOf(this.broker).rebalanceBatch);
          const moved: typeof plan = [];
          for (const step of plan) {
            const ok = await ctx
              .call(
                `${this.name}.handoff`,
                { workspaceId: step.workspaceId, target: step.to },
                { nodeID: step.from },
              )
              .catch(() => false);
            if (ok) moved.push(step);
          }
          return { moved, planned: plan.length };
        },
      },

      handoff: {
        visibility: "public",
        params: {
          workspaceId: { type: "string", pattern: WORKSPACE_ID_PATTERN },
          target: { type: "string", min: 1 },
        },
        async handler(this: This, ctx: Context<{ workspaceId: string; target: string }>): Promise<boolean> {
          return (await this.workerPlacement?.handOff(ctx.params.workspaceId, ctx.params.target)) ?? false;
        },
      },
    },

    methods: {
      async startPlacement(this: This) {
        const placement = placementOf(this.broker);
        if (!placement) {
          // Running unfenced would be a bug: the Placement middleware must have run.
          throw new Error(
            "placement layer missing: is moleculer.config.ts's Placement middleware in the broker options?",
          );
        }
        const cfg = configOf(this.broker);
        const runtime = () => this.runtime;
        const wp = new WorkerOwnership({
          broker: this.broker,
          cfg,
          placement,
          logger: this.logger,
          host: {
            local: () => runtime().local(),
            get size() {
              return runtime().size;
            },
            flush: async (accountId) => {
              await runtime().drive(accountId, (engine) => engine.flushAuthState());
            },
            stopWorkspace: (ws) => runtime().stopWorkspace(ws),
            stopAll: () => runtime().stopAll(),
          },
        });
        this.runtime.setOwnership(wp);
        await wp.start();
        this.workerPlacement = wp;
        this.reconciler = new Reconciler(
          wp,
          {
            has: (id) => runtime().has(id),
            local: () => runtime().local(),
            start: (doc) => runtime().start(doc),
            startMany: (docs) => runtime().startMany(docs),
            stopWorkspace: (ws) => runtime().stopWorkspace(ws),
            desiredRunning: (workspaceIds) =>
              this.repo.col
                .find({ workspaceId: { $in: workspaceIds }, desiredState: "running" })
                .toArray() as Promise<AccountDoc[]>,
            unplacedWorkspaces: async () => {
              const docs = await this.repo.col
                .find({ node: null, desiredState: "running" }, { projection: { workspaceId: 1 }, limit: 500 })
                .toArray();
              return [...new Set(docs.map((d) => d.workspaceId))];
            },
          },
          cfg,
          this.logger,
        );
        this.reconciler.start();
      },

      async stopPlacement(this: This) {
        const wp = this.workerPlacement;
        if (!wp) return;
        if (wp.liveness.isCurrent()) {
          const result = await wp.drain().catch((err: Error) => {
            this.logger.warn(`Drain before stop failed: ${err.message}`);
            return null;
          });
          if (result?.moved) this.logger.info(`Drained ${result.moved} workspace(s) before stopping`);
        }
        await this.reconciler?.stop();
        await wp.stop();
      },

      async routeToOwner(this: This, ctx: Context<{ workspaceId: string }>): Promise<string | null> {
        if (!this.workerPlacement) return null;
        return this.workerPlacement.route(String(ctx.params.workspaceId), hopsOf(ctx, hopsKey(this)));
      },

      forwardTo(this: This, ctx: Context<{ workspaceId: string }>, nodeID: string): Promise<unknown> {
        const key = hopsKey(this);
        return ctx.call(ctx.action!.name!, ctx.params, { nodeID, meta: { [key]: hopsOf(ctx, key) + 1 } });
      },
    },
  };
  return schema as unknown as Partial<ServiceSchema>;
}
