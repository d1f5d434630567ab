// The placement side of a worker node, composed: its lease and fenced ownership (WorkerOwnership),
// its reconciler, and the routing of calls that reached a node that does not own their workspace.
// The `session` service builds one when it starts and stops it first when it stops (the node drains
// before its engines stop); the `cluster` service reads it through `workerNodeOf(broker)`.
import type { Context, Logger, ServiceBroker } from "moleculer";
import type { AccountDoc } from "../accounts/types.ts";
import { configOf } from "../config.ts";
import type { AccountsRepo } from "../store/accounts-repo.ts";
import type { Ownership } from "./fence.ts";
import { stopWithin } from "./hand-over.ts";
import { placementOf } from "./kv.ts";
import { Reconciler } from "./reconciler.ts";
import { WorkerOwnership, type SessionHost } from "./worker-ownership.ts";

/** What the worker node needs of the node's sessions (the session runtime). */
export interface SessionsRuntime extends SessionHost {
  has(accountId: string): boolean;
  start(doc: AccountDoc): Promise<unknown>;
  startMany(docs: AccountDoc[]): Promise<unknown>;
  setOwnership(ownership: Ownership): void;
  /** Kills every session without writing (stopAll took too long). */
  killAll(): Promise<void>;
}

/** Meta key counting the forwards of a call. */
export const FORWARDED_META = "placementForwarded";

/** Forwards so far (older nodes sent `true` for one). */
function hopsOf(ctx: Context): number {
  const v = (ctx.meta as Record<string, unknown>)[FORWARDED_META];
  return typeof v === "number" ? v : v === true ? 1 : 0;
}

const nodes = new WeakMap<ServiceBroker, WorkerNode>();

/** The worker node of a broker running `session`, once started. */
export function workerNodeOf(broker: ServiceBroker): WorkerNode | undefined {
  return nodes.get(broker);
}

export class WorkerNode {
  readonly ownership: WorkerOwnership;
  private readonly reconciler: Reconciler;

  constructor(
    private readonly broker: ServiceBroker,
    private readonly runtime: SessionsRuntime,
    repo: AccountsRepo,
    private readonly logger: Logger,
  ) {
    const placement = placementOf(broker);
    // Running unfenced would be a bug: the Placement middleware of moleculer.config.ts must have run.
    if (!placement)
      throw new Error("placement layer missing: is the Placement middleware in the broker options?");
    const cfg = configOf(broker);
    this.ownership = new WorkerOwnership({
      broker,
      cfg,
      placement,
      logger,
      host: runtime,
      accountOwners: (ws) => repo.ownersIn(ws),
    });
    this.reconciler = new Reconciler(
      this.ownership,
      {
        has: (id) => runtime.has(id),
        local: () => runtime.local(),
        start: (doc) => runtime.start(doc),
        startMany: (docs) => runtime.startMany(docs),
        stopWorkspace: (ws) => runtime.stopWorkspace(ws),
        desiredRunning: (workspaceIds) => repo.desiredRunningIn(workspaceIds),
        unplacedWorkspaces: () => repo.unplacedWorkspaces(500),
        unnamedWorkspaces: () => repo.workspacesWantingToRun(),
      },
      cfg,
      logger,
    );
    runtime.setOwnership(this.ownership);
  }

  async start(): Promise<void> {
    await this.ownership.start();
    this.reconciler.start();
    nodes.set(this.broker, this);
  }

  /** Drains (while the lease holds) so the sessions come back elsewhere, then lets the lease go. */
  async stop(): Promise<void> {
    nodes.delete(this.broker);
    if (this.ownership.liveness.isCurrent()) {
      const result = await this.ownership.drain().catch((err: Error) => {
        this.logger.warn(`Drain before stop failed: ${err.message}`);
        return null;
      });
      if (result?.moved) this.logger.info(`Drained ${result.moved} workspace(s) before stopping`);
    }
    await this.reconciler.stop();
    // What could not be handed off stops while the lease still holds: gracefully (a clean close and a
    // final save), and with its workspaces still this node's, so nobody claims them under it. Within
    // a hand-off's bounds: a save that hangs must not hold the lease, and every workspace with it.
    await stopWithin(
      {
        what: `Stop of ${this.broker.nodeID}`,
        graceful: () => this.runtime.stopAll(),
        kill: () => this.runtime.killAll(),
        then: "letting the lease go",
      },
      {},
      this.logger,
    );
    await this.ownership.stop();
  }

  /** Asks the reconciler for a pass that reads the database (something changed). */
  kick(): void {
    this.reconciler.kick();
  }

  /** Where a call must run: null → here (claiming an unplaced workspace); a node id → `forward` there. */
  route(ctx: Context<{ workspaceId: string }>): Promise<string | null> {
    return this.ownership.route(String(ctx.params.workspaceId), hopsOf(ctx));
  }

  /** Calls the same action on `nodeID`, counting the hop (a call is forwarded at most twice). */
  forward(ctx: Context<{ workspaceId: string }>, nodeID: string): Promise<unknown> {
    return ctx.call(ctx.action!.name!, ctx.params, { nodeID, meta: { [FORWARDED_META]: hopsOf(ctx) + 1 } });
  }
}
