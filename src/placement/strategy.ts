// WorkspaceShard (DESIGN.md §5): the load-balancing strategy of the `session` actions. It runs on the
// calling node and picks the endpoint of the workspace's recorded owner from the broker's local mirror;
// for an unplaced workspace (or an owner that offers no endpoint) it picks the owner-to-be, which
// claims it on receipt: bounded-load HRW over the live workers it knows that offer an endpoint (plain
// HRW among the offered endpoints, skipping draining nodes, before it knows any). No key is a
// validation error, never a random node. select() is synchronous and does no I/O.
import { Strategies, type Context, type Endpoint } from "moleculer";
import { BoundedMap } from "../bounded-map.ts";
import { ValidationError } from "../errors.ts";
import { configOf } from "../config.ts";
import { chooseOwner, DEFAULT_LOAD_FACTOR, HrwIndex } from "./hrw.ts";
import { mirrorOf } from "./kv.ts";
import type { PlacementMirror } from "./mirror.ts";

export const WORKSPACE_SHARD = "WorkspaceShard";

/** The shard key of a call: params.workspaceId, then meta.workspaceId, normalised to a string. */
export function workspaceIdOf(ctx: Context | null | undefined): string | undefined {
  const fromParams = (ctx?.params as { workspaceId?: unknown } | undefined)?.workspaceId;
  const raw = fromParams ?? (ctx?.meta as { workspaceId?: unknown } | undefined)?.workspaceId;
  if (raw === undefined || raw === null || raw === "") return undefined;
  return typeof raw === "string" || typeof raw === "number" ? String(raw) : undefined;
}

/** How long a choice for an unplaced workspace counts in its node's load before its record shows. */
export const PENDING_PLACEMENT_MS = 5000;

export class WorkspaceShardStrategy extends Strategies.Base {
  /**
   * Unplaced workspaces this caller sent to their owner-to-be whose record the mirror does not show
   * yet (the claim is a round trip away, the watch another): counted in that node's load, so a burst
   * of new workspaces from one gateway spreads as if each were placed at once, instead of every call
   * of the burst reading the same loads and piling onto the least loaded node.
   */
  private readonly pending = new BoundedMap<string, { node: string; at: number }>(10_000);
  private ids: string[] = [];
  private positions = new Map<string, number>();
  private index = new HrwIndex([]);

  /** Rebuilds the HRW index only when the offered endpoints differ from the last call's. */
  private sync(list: Endpoint[]): void {
    let same = list.length === this.ids.length;
    for (let i = 0; same && i < list.length; i++) same = list[i].id === this.ids[i];
    if (same) return;
    this.ids = list.map((ep) => ep.id);
    this.positions = new Map(this.ids.map((id, i) => [id, i]));
    this.index = new HrwIndex(this.ids.map((id) => ({ id })));
  }

  private loadFactor(): number {
    const broker = this.broker as { options?: object } | undefined;
    return broker?.options ? configOf(broker as { options: object }).loadFactor : DEFAULT_LOAD_FACTOR;
  }

  /** The mirror's loads plus the pending choices (other than `workspaceId`'s own); forgets the choices
   * the mirror now records, and those too old to be in flight still. */
  private loadsWithPending(mirror: PlacementMirror, workspaceId: string): ReadonlyMap<string, number> {
    if (this.pending.size === 0) return mirror.loads();
    const loads = new Map(mirror.loads());
    const now = Date.now();
    for (const [ws, { node, at }] of this.pending) {
      if (mirror.owner(ws) !== undefined || now - at > PENDING_PLACEMENT_MS) this.pending.delete(ws);
      else if (ws !== workspaceId) loads.set(node, (loads.get(node) ?? 0) + 1);
    }
    return loads;
  }

  override select(list: Endpoint[], ctx?: Context): Endpoint {
    const workspaceId = workspaceIdOf(ctx);
    if (workspaceId === undefined) {
      throw new ValidationError("workspaceId is required to route a session call", {
        action: (ctx as { action?: { name?: string } } | undefined)?.action?.name,
      });
    }
    this.sync(list);
    const mirror = mirrorOf(this.broker);
    const owner = mirror?.owner(workspaceId);
    if (owner !== undefined) {
      const i = this.positions.get(owner);
      if (i !== undefined) return list[i];
    }
    if (mirror?.nodesKnown) {
      // Bounded-load HRW (DESIGN.md §4) over the live workers that offer an endpoint, as the mirror
      // counts their loads; the worker that receives the call claims the workspace.
      const offered = mirror.workers().filter((n) => this.positions.has(n.id));
      const chosen = chooseOwner(
        workspaceId,
        offered,
        this.loadsWithPending(mirror, workspaceId),
        this.loadFactor(),
      );
      if (chosen !== undefined) {
        this.pending.set(workspaceId, { node: chosen, at: Date.now() });
        return list[this.positions.get(chosen)!];
      }
    }
    const top = this.index.topIndex(workspaceId);
    if (mirror && top >= 0 && mirror.isDraining(list[top].id)) {
      const open = list.filter((ep) => !mirror.isDraining(ep.id));
      if (open.length > 0) return open[new HrwIndex(open.map((ep) => ({ id: ep.id }))).topIndex(workspaceId)];
    }
    return list[Math.max(0, top)];
  }
}
