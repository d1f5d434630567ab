// The placement side of a worker (a node running `session`): its liveness lease, the fenced ownership
// the session runtime asks before it runs or writes anything (DESIGN.md §3), routing of a call that
// reached a node that does not own the workspace (§5), and hand-offs for drain and rebalance (§9).
//
// Ownership is per lease term: a node runs a workspace only while its lease is current AND it claimed
// (or re-claimed) the workspace's record by compare-and-set during the current term. A record that
// still names this node from before a fence or a restart is adopted by a fresh CAS (epoch + 1), so a
// survivor that claimed it meanwhile always wins or always loses cleanly — never both run it.
import type { ServiceBroker } from "moleculer";
import type { Config } from "../config.ts";
import { WorkspaceUnavailableError } from "../errors.ts";
import type { Fence, Ownership } from "./fence.ts";
import { runDrain, type DrainReport } from "./drain.ts";
import { stopForHandOver, type HandOverBounds } from "./hand-over.ts";
import { chooseOwner, nextOwner, type PlacementNode } from "./hrw.ts";
import { Liveness, type NodeRecord } from "./liveness.ts";
import type { ClusterPlacement } from "./kv.ts";
import type { PlacementEntry } from "./placement-table.ts";

type Logger = { info(...a: unknown[]): void; warn(...a: unknown[]): void; debug(...a: unknown[]): void };

/** What placement needs from the node's session runtime. */
export interface SessionHost {
  /** Workspaces with sessions running (or queued) here, and their account ids. */
  local(): { accountId: string; workspaceId: string }[];
  readonly size: number;
  /** Stops a workspace's sessions while this node still holds it, each closing cleanly and then
   * saving its auth state (a browser commits its storage on close), and writing no status: a
   * hand-off, whose next owner restores them. */
  handOverWorkspace(workspaceId: string): Promise<number>;
  /** Stops a workspace's sessions without writing anything (it is no longer ours). */
  stopWorkspace(workspaceId: string): Promise<number>;
  /** Stops every session without writing anything (fencing). */
  stopAll(): Promise<void>;
}

export interface WorkerOwnershipOptions {
  broker: ServiceBroker;
  cfg: Config;
  placement: ClusterPlacement;
  host: SessionHost;
  logger: Logger;
  /** How long a hand-off waits for its sessions' graceful stop, then for their kill (hand-over.ts).
   * @default HAND_OVER_STOP_MS / HAND_OVER_KILL_MS */
  handOver?: HandOverBounds;
  /** What a workspace's accounts say of their owners: read by a claim of a workspace the table does not
   * name only between the table's loss and the reconciler's read of every workspace (noteUnnamed). */
  accountOwners?: (workspaceId: string) => Promise<UnnamedWorkspace>;
}

interface Held {
  epoch: number;
  term: number;
}

/** What the accounts of a workspace the placement table does not name say of it. */
export interface UnnamedWorkspace {
  /** The nodes its accounts last ran on. */
  lastOwners: string[];
  /** The highest epoch its accounts carry. */
  above: number;
}

export class WorkerOwnership implements Ownership {
  readonly nodeId: string;
  readonly liveness: Liveness;
  draining = false;
  /** Drains begun (a drain goes on while it is the latest and the node still drains), and the one
   * under way. */
  private drains = 0;
  private drainRun?: Promise<DrainReport>;
  /** What the reconciler's last broad sweep read of the workspaces wanting to run (null outside a
   * broad sweep's window: by then every node has seen the table's loss and stopped what it ran). */
  private unnamedKnown: ReadonlyMap<string, UnnamedWorkspace> | null = null;
  /** The placement bucket's resets (mirror.bucketResets) that a broad sweep's read has covered. */
  private resetsRead = 0;
  private readonly held = new Map<string, Held>();
  /** Workspaces being handed off, with the hold they had (`handingOff`): nothing here claims them
   * meanwhile (the reconciler would see one recorded for this node and not held, and adopt it under the
   * hand-off's compare-and-set). */
  private readonly handingOver = new Map<string, Held>();
  /** Claims in flight, so concurrent calls for one workspace share one CAS. */
  private readonly claiming = new Map<string, Promise<PlacementEntry | null>>();
  private readonly listeners: (() => void)[] = [];
  /** Called when ownership changed (a claim, a loss): the reconciler acts on it. */
  onChange: () => void = () => undefined;

  constructor(private readonly opts: WorkerOwnershipOptions) {
    this.nodeId = opts.broker.nodeID;
    this.liveness = new Liveness({
      kv: opts.placement.nodesKv,
      nodeId: this.nodeId,
      renewMs: opts.cfg.leaseRenewMs,
      ttlMs: opts.placement.leaseTtlMs,
      describe: () => ({
        services: opts.cfg.services,
        capacity: opts.cfg.sessionCapacity,
        sessions: opts.host.size,
        draining: this.draining,
      }),
      onFence: () => this.fence(),
      onLease: () => this.onChange(),
      logger: opts.logger,
    });
  }

  get mirror() {
    return this.opts.placement.mirror;
  }

  get table() {
    return this.opts.placement.table;
  }

  async start(): Promise<void> {
    const onPlacement = (ws: string, entry: PlacementEntry | null) => this.onPlacement(ws, entry);
    const onNodes = () => this.onChange();
    this.mirror.on("placement", onPlacement);
    this.mirror.on("nodes", onNodes);
    this.listeners.push(
      () => this.mirror.off("placement", onPlacement),
      () => this.mirror.off("nodes", onNodes),
    );
    await this.liveness.start();
    // Our own key, at once: other nodes' bounded-load choices and the strategy count this node.
    await this.mirror.pollNodes().catch(() => undefined);
  }

  /** Leaves the cluster: stops renewing and removes the lease key (records stay, for a restart or
   * for survivors to claim). */
  async stop(): Promise<void> {
    for (const off of this.listeners.splice(0)) off();
    this.held.clear();
    await this.liveness.stop(true);
  }

  // ---- Ownership (asked by the session runtime) ----

  current(workspaceId: string): Fence | null {
    return this.fenceOf(workspaceId, this.held.get(workspaceId));
  }

  handingOff(workspaceId: string): Fence | null {
    return this.fenceOf(workspaceId, this.handingOver.get(workspaceId));
  }

  /** The fence of hold `h` while it is good: taken in the current lease term, the record agreeing. */
  private fenceOf(workspaceId: string, h: Held | undefined): Fence | null {
    if (!h || !this.liveness.isCurrent() || h.term !== this.liveness.term) return null;
    const rec = this.mirror.get(workspaceId);
    if (rec && (rec.node !== this.nodeId || rec.epoch !== h.epoch)) return null;
    return { node: this.nodeId, epoch: h.epoch };
  }

  /** `known`: the record the caller just read (null: none), so the claim need not read it again. */
  async acquire(workspaceId: string, known?: { record: PlacementEntry | null }): Promise<Fence> {
    const fence = this.current(workspaceId);
    if (fence) return fence;
    const entry = await this.claim(workspaceId, known ? known.record : null, known !== undefined);
    const now = this.current(workspaceId);
    if (now) return now;
    if (!entry) {
      const owner = this.mirror.owner(workspaceId);
      throw new WorkspaceUnavailableError(workspaceId, owner ? `owned by ${owner}` : "claim lost");
    }
    return { node: this.nodeId, epoch: entry.epoch };
  }

  /** The workspaces wanting to run and their accounts' owners, as a broad sweep read them (null: none
   * under way); claims of a workspace the table does not name check them. */
  noteUnnamed(unnamed: ReadonlyMap<string, UnnamedWorkspace> | null, resetsRead?: number): void {
    this.unnamedKnown = unnamed;
    if (resetsRead !== undefined) this.resetsRead = resetsRead;
  }

  /** Workspaces this node holds now. */
  heldWorkspaces(): string[] {
    return [...this.held.keys()].filter((ws) => this.current(ws) !== null);
  }

  // ---- claims ----

  /** Live worker nodes that take new workspaces, weighted by capacity. */
  workers(includeDraining = false): PlacementNode[] {
    return this.mirror.workers(includeDraining);
  }

  isLive(nodeId: string): boolean {
    return nodeId === this.nodeId ? this.liveness.isCurrent() : this.mirror.isLive(nodeId);
  }

  /**
   * Claims the workspace for this node by CAS if it may: unplaced (and we are not draining), recorded
   * for this node (adoption in a new term), or recorded for a node whose lease key is gone (checked on
   * the server, not only in the mirror). `seen` is the record the caller decided on (null: read it).
   * Returns the new entry, or null when not allowed or when another claim won.
   */
  async claim(
    workspaceId: string,
    seen: PlacementEntry | null,
    /** `seen` was just read from the table: null means unplaced, not unknown. */
    fresh = false,
    /** A workspace the table does not name whose accounts do (a bucket that lost its records): claimed
     * only if none of the nodes they name still holds a lease, above the highest epoch they carry. */
    unnamed?: UnnamedWorkspace,
  ): Promise<PlacementEntry | null> {
    let pending = this.claiming.get(workspaceId);
    if (!pending) {
      pending = this.tryClaim(workspaceId, seen, fresh, unnamed).finally(() =>
        this.claiming.delete(workspaceId),
      );
      this.claiming.set(workspaceId, pending);
    }
    return pending;
  }

  private async tryClaim(
    workspaceId: string,
    seen: PlacementEntry | null,
    fresh: boolean,
    unnamed?: UnnamedWorkspace,
  ): Promise<PlacementEntry | null> {
    // A draining node takes nothing: not a new workspace, a dead node's, nor a record of its own it no
    // longer holds (its reconciler passes that on: `passOn`).
    if (!this.liveness.isCurrent() || this.draining) return null;
    if (this.current(workspaceId) || this.handingOver.has(workspaceId)) return null;
    const term = this.liveness.term;
    // A stale `seen` only makes the compare-and-set below fail (a lost race), never a wrong claim.
    const current = seen ?? (fresh ? null : await this.table.get(workspaceId));
    let owners = unnamed;
    if (!current) {
      // Its accounts' last owner still runs them: the table lost its record, not the workspace. Known
      // to whoever claims (a call routed here, a create), not only to the reconciler's sweep, while
      // its sweeps read every workspace (noteUnnamed): no read on the hot path of a first QR.
      owners ??= this.unnamedKnown?.get(workspaceId);
      // The table found made again, the sweep's read not done yet: asked of the accounts directly.
      if (!owners && this.mirror.bucketResets !== this.resetsRead)
        owners = await this.opts.accountOwners?.(workspaceId);
      for (const node of owners?.lastOwners ?? [])
        if (node !== this.nodeId && (await this.holdsLease(node))) return null;
    } else if (current.node !== this.nodeId) {
      if (await this.holdsLease(current.node)) return null;
    }
    // Held before the CAS resolves: the watch may deliver the new record first, and must see it as ours.
    const entry = await this.table.claim(workspaceId, this.nodeId, current, owners?.above ?? 0);
    if (!entry) return null;
    if (this.draining) {
      // A drain began meanwhile and took its list: not held, so its reconciler passes the record on.
      this.onChange();
      return null;
    }
    if (!this.liveness.isCurrent() || this.liveness.term !== term) return null;
    this.held.set(workspaceId, { epoch: entry.epoch, term });
    this.mirror.apply(workspaceId, entry);
    this.opts.logger.debug(
      `Claimed workspace ${workspaceId} (epoch ${entry.epoch}, was ${current?.node ?? "unplaced"})`,
    );
    // A workspace that had an owner has accounts to restore: a pass starts them. A new one has none
    // but the account its caller is about to create or start (a claim of the reconciler's own sweep
    // starts its accounts in that same pass).
    if (current) this.onChange();
    return entry;
  }

  /** Whether `node`'s key in the nodes bucket is there (read on the server, not in the mirror). */
  private async holdsLease(node: string): Promise<boolean> {
    const alive = await this.opts.placement.nodesKv.get(node);
    return !!alive && alive.operation === "PUT" && alive.value.length > 0;
  }

  /**
   * Where a call for `workspaceId` that reached this node must run: null → here (this node owns it,
   * now or after claiming it); a node id → forward there, to its recorded owner. `hops` counts the
   * forwards so far: no call is forwarded more than twice (so never in a loop).
   */
  async route(workspaceId: string, hops: number): Promise<string | null> {
    if (this.current(workspaceId)) return null;
    if (!this.liveness.isCurrent())
      throw new WorkspaceUnavailableError(workspaceId, "this node's lease lapsed");
    let rec = this.mirror.get(workspaceId) ?? null;
    // Sent here by a node that found this one the owner (a draining node that just passed the
    // workspace on): this node's mirror may not show that yet, and sending the call back would spend
    // its last hop on a 503.
    if (hops > 0 && rec && rec.node !== this.nodeId) rec = await this.table.get(workspaceId);
    if (!rec) {
      if (this.draining) {
        // The caller does not know yet that this node drains: to the choice among the others.
        const others = this.workers().filter((n) => n.id !== this.nodeId);
        const chosen = chooseOwner(workspaceId, others, this.mirror.loads(), this.opts.cfg.loadFactor);
        if (hops < 2 && chosen && this.reachable(chosen)) return chosen;
      }
      // Unplaced as far as the mirror knows: claimed here, where the caller's strategy sent it (its
      // bounded-load choice), without reading the table first: for a new workspace the
      // compare-and-set is the read; only a claim that loses reads what is there.
      if ((await this.claim(workspaceId, null, true)) && this.current(workspaceId)) return null;
      rec = await this.table.get(workspaceId);
    }
    if (rec && rec.node !== this.nodeId && this.isLive(rec.node)) {
      // To the recorded owner: at most twice (a caller's stale choice, then a placement race).
      if (hops >= 2 || !this.reachable(rec.node)) {
        throw new WorkspaceUnavailableError(workspaceId, `owned by ${rec.node}, not reachable from here`);
      }
      return rec.node;
    }
    if (this.draining) {
      // Recorded here but not held (a hand-off that failed, a lease term that ended): passed on now,
      // and the call with it; a dead node's is left to the others.
      if (hops < 2 && rec?.node === this.nodeId && (await this.passOn(workspaceId))) {
        const next = this.mirror.owner(workspaceId);
        if (next && next !== this.nodeId && this.reachable(next)) return next;
      }
      throw new WorkspaceUnavailableError(workspaceId, "this node is draining");
    }
    try {
      await this.acquire(workspaceId, { record: rec });
    } catch (err) {
      // Lost a placement race: the winner is the owner now.
      const winner = this.mirror.owner(workspaceId);
      if (hops < 2 && winner && winner !== this.nodeId && this.reachable(winner)) return winner;
      throw err;
    }
    return null;
  }

  private reachable(nodeId: string): boolean {
    return this.opts.broker.registry.nodes.get(nodeId)?.available === true;
  }

  // ---- losing ownership ----

  private onPlacement(workspaceId: string, entry: PlacementEntry | null): void {
    const h = this.held.get(workspaceId);
    // The record of this node's own claim, coming back through the watch (maybe before the claim's
    // compare-and-set has answered).
    const echo =
      entry !== null &&
      entry.node === this.nodeId &&
      (h === undefined ? this.claiming.has(workspaceId) : entry.epoch === h.epoch);
    if (h && !echo) {
      this.held.delete(workspaceId);
      this.opts.logger.info(
        `Workspace ${workspaceId} now on ${entry?.node ?? "nobody"}: stopping its sessions here`,
      );
      void this.opts.host.stopWorkspace(workspaceId);
    }
    // A pass is due for a workspace lost, one recorded for this node that it does not hold (adoption),
    // or one whose owner is gone; not for the echo of a claim, nor for a workspace placed on another
    // live node (a pass would read the database for nothing: with N workers, every placement made N
    // passes). The periodic pass still looks at everything.
    const mine = entry !== null && entry.node === this.nodeId;
    if (!echo && (h !== undefined || mine || (entry !== null && !this.isLive(entry.node)))) this.onChange();
  }

  /** The lease lapsed: forget every claim and stop every session, writing nothing. */
  private fence(): Promise<void> {
    this.held.clear();
    return this.opts.host.stopAll();
  }

  // ---- hand-offs (drain, rebalance) ----

  /**
   * Hands a workspace this node holds to `target`: no new starts here, sessions stopped cleanly with
   * their auth state saved (killed when that takes too long: hand-over.ts), then the record
   * compare-and-set to the target (which adopts it). For a rebalance, a
   * workspace recorded for this node but not held in its current lease term (a claim whose term ended
   * as it won, or one the reconciler has not adopted yet after a fence) is adopted first. A draining
   * node does not: its reconciler passes such a record on instead (`passOn`). False when not ours.
   */
  async handOff(workspaceId: string, target: string): Promise<boolean> {
    // Only to a live worker that takes workspaces (the bus carries `session.handoff` from any node).
    if (target === this.nodeId || !this.workers().some((n) => n.id === target)) return false;
    if (!this.draining && !this.current(workspaceId) && this.mirror.owner(workspaceId) === this.nodeId) {
      await this.claim(workspaceId, null);
    }
    const h = this.held.get(workspaceId);
    if (!h || !this.current(workspaceId)) return false;
    this.held.delete(workspaceId);
    this.handingOver.set(workspaceId, h);
    try {
      await stopForHandOver(this.opts.host, workspaceId, this.opts.handOver ?? {}, this.opts.logger);
      const rec = await this.table.get(workspaceId);
      if (!rec || rec.node !== this.nodeId || rec.epoch !== h.epoch) return false;
      const moved = await this.table.claim(workspaceId, target, rec);
      if (moved) this.mirror.apply(workspaceId, moved);
      return moved !== null;
    } finally {
      // A hand-off that failed leaves the record here: the reconciler adopts it again.
      this.handingOver.delete(workspaceId);
    }
  }

  /**
   * A draining node's record that it does not hold (a hand-off that failed, a claim whose lease term
   * ended): compare-and-set straight to its next owner among the other live, non-draining workers,
   * which adopts it, instead of being run by nobody until this node leaves or is undrained. Nothing of
   * it should run here (not held: its writes are fenced); whatever does is stopped first. False when
   * there is nowhere to go or the record changed meanwhile.
   */
  async passOn(workspaceId: string): Promise<boolean> {
    if (!this.draining || !this.liveness.isCurrent()) return false;
    if (this.current(workspaceId) || this.handingOver.has(workspaceId)) return false;
    const others = this.workers().filter((n) => n.id !== this.nodeId);
    const target = nextOwner(workspaceId, this.nodeId, others, this.mirror.loads(), this.opts.cfg.loadFactor);
    if (!target) return false;
    const rec = await this.table.get(workspaceId);
    if (!rec || rec.node !== this.nodeId) return false;
    await this.opts.host.stopWorkspace(workspaceId);
    const moved = await this.table.claim(workspaceId, target, rec);
    if (moved) this.mirror.apply(workspaceId, moved);
    return moved !== null;
  }

  /** Ends a drain: the node takes workspaces again (new ones, a lost node's, those it kept) and
   * reports it is no longer draining. */
  async undrain(): Promise<{ nodeId: string; draining: boolean }> {
    this.draining = false; // a drain under way begins no more hand-offs

    await this.liveness.touch();
    this.onChange();
    return { nodeId: this.nodeId, draining: false };
  }

  /** Hands every workspace to its next HRW owner among the other live, non-draining workers; the
   * node then reports `draining` with zero sessions (until `undrain`). Workspaces with nowhere to go
   * stay (handed off later, once a worker can take them: `continueDrain`). */
  async drain(): Promise<DrainReport> {
    this.draining = true;
    const generation = ++this.drains;
    const superseded = this.drainRun;
    const run = (async () => {
      try {
        // The hand-offs under way of a drain this one supersedes end first (a node's stop would
        // otherwise kill their sessions midway, losing the final save a hand-off exists for).
        await superseded?.catch(() => undefined);
        await this.liveness.touch();
        // Fresh view of the others: when a whole cluster stops at once, every node is draining and
        // none hands its workspaces to a node that is about to stop too.
        await this.mirror.pollNodes().catch(() => undefined);
        const report = await runDrain({
          nodeId: this.nodeId,
          workspaces: this.heldWorkspaces(),
          targets: this.workers().filter((n) => n.id !== this.nodeId),
          loads: new Map(this.mirror.loads()),
          loadFactor: this.opts.cfg.loadFactor,
          handOff: (ws, target) => this.handOff(ws, target),
          goingOn: () => this.draining && this.drains === generation,
        });
        return { ...report, sessions: this.opts.host.size };
      } finally {
        await this.liveness.touch().catch(() => undefined);
      }
    })();
    this.drainRun = run;
    try {
      return await run;
    } finally {
      if (this.drainRun === run) this.drainRun = undefined;
    }
  }

  /** A draining node still holding workspaces (a drain found nowhere to send them, or a hand-off failed)
   * drains again once another worker can take them. */
  async continueDrain(): Promise<void> {
    if (!this.draining || this.drainRun || !this.liveness.isCurrent()) return;
    if (this.heldWorkspaces().length === 0 || !this.workers().some((n) => n.id !== this.nodeId)) return;
    const report = await this.drain();
    if (report.moved > 0) this.opts.logger.info(`${this.nodeId} (draining) handed off ${report.moved} more`);
  }

  /**
   * Workspaces whose owner is no longer their bounded-load HRW choice among live, non-draining
   * workers (e.g. a node joined), at most `max`, each move taking the workspace to a less loaded
   * node: [{workspaceId, from, to}]. Owners hand them off.
   */
  rebalancePlan(max: number): { workspaceId: string; from: string; to: string }[] {
    const workers = this.workers();
    const loads = new Map(this.mirror.loads());
    const plan: { workspaceId: string; from: string; to: string }[] = [];
    for (const rec of this.mirror.entries()) {
      if (plan.length >= max) break;
      if (!this.isLive(rec.node) || this.mirror.isDraining(rec.node)) continue;
      const fromLoad = loads.get(rec.node) ?? 1;
      loads.set(rec.node, fromLoad - 1);
      const best = chooseOwner(rec.workspaceId, workers, loads, this.opts.cfg.loadFactor);
      // Only moves that do not unbalance: the target ends below where the source started.
      if (best && best !== rec.node && (loads.get(best) ?? 0) + 1 < fromLoad) {
        plan.push({ workspaceId: rec.workspaceId, from: rec.node, to: best });
        loads.set(best, (loads.get(best) ?? 0) + 1);
      } else loads.set(rec.node, (loads.get(rec.node) ?? 0) + 1);
    }
    return plan;
  }

  /** The node list of `GET /api/v1/cluster/nodes`. */
  nodes(): NodeRecord[] {
    return [...this.mirror.liveNodes().values()].sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
  }
}
