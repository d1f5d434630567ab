// The sessions of one node (session.ts): running sessions keyed by account id, the claims that open
// them, and the node's start queue with its concurrency limit.
import type { AccountDoc, QrView } from "../accounts/types.ts";
import type { Engine } from "../engines/base.ts";
import type { OutboundMessage } from "../messages/types.ts";
import { resolveEngine } from "../engines/index.ts";
import {
  createUnderWay,
  InvalidStateError,
  NotFoundError,
  NotOwnerError,
  WorkspaceUnavailableError,
} from "../errors.ts";
import { awaitsStart, type AccountStatus } from "../lifecycle/states.ts";
import type { AccountsRepo } from "../store/accounts-repo.ts";
import type { AuthStore } from "../store/auth-store.ts";
import { retryTransient } from "../store/mongo.ts";
import { carriesFence, type Fence, type Ownership } from "../placement/fence.ts";
import {
  type ClaimOutcome,
  type EngineSettings,
  type LocalSessionInfo,
  noEngineError,
  Session,
  type SessionDeps,
} from "./session.ts";
import type { Publisher } from "./event-publisher.ts";
import type { PipelineDeps } from "./pipeline.ts";
import { FailureRetry } from "./failure-retry.ts";
import { StartQueue } from "./start-queue.ts";
import { initializingPatch } from "./status-run.ts";

export type { LocalSessionInfo } from "./session.ts";

export interface RuntimeOptions extends Pick<PipelineDeps, "closedBudgetMs"> {
  nodeId: string;
  repo: AccountsRepo;
  authStore: AuthStore;
  ownership: Ownership;
  /** Logs and broadcasts account events (never `emit`: every gateway relays them). */
  publisher: Publisher;
  /** Engine settings shared by every session of the node. */
  engine: EngineSettings;
  /** Concurrent engine starts. @default 2 */
  startConcurrency?: number;
  /** Sessions this node runs at most (SESSION_CAPACITY); one more fails `capacity_exhausted` and is
   * retried with backoff. ≤ 0: no bound. @default 0 */
  capacity?: number;
  /** Backoff of the restarts of accounts that failed for a retryable reason. @default 5000 / 300000 ms */
  failedRetry?: { baseMs: number; maxMs: number };
  logger: SessionDeps["logger"];
  /** Records a receipt of a sent message. @default not recorded */
  recordAck?: SessionDeps["recordAck"];
  /** Keeps the bytes of received media. @default not kept */
  keepIncomingMedia?: SessionDeps["keepIncomingMedia"];
  /** Told each time an account becomes `connected` here. */
  onConnected?: (accountId: string) => void;
}

export class SessionRuntime {
  private readonly sessions = new Map<string, Session>();
  private readonly opening = new Map<string, Promise<LocalSessionInfo>>();
  /** Accounts a restore (startMany) claimed and has yet to open: a stop or logout meanwhile finds no
   * session, and takes them out of the restore's queue instead. */
  private readonly restoring = new Set<string>();
  /** Stops under way, by account, until the engine is down: a start of the account waits for it (two
   * engines of one session must never run at once: a restart clicked twice). */
  private readonly stopping = new Map<string, { done: Promise<unknown>; session: Session }>();
  private readonly queue: StartQueue;
  private readonly deps: SessionDeps;
  private readonly retries: FailureRetry;
  private ownership: Ownership;

  constructor(private readonly opts: RuntimeOptions) {
    this.ownership = opts.ownership;
    this.queue = new StartQueue(opts.startConcurrency ?? 2);
    const store = opts.authStore;
    this.deps = {
      repo: opts.repo,
      ownership: () => this.ownership,
      publisher: opts.publisher,
      recordAck: opts.recordAck,
      keepIncomingMedia: opts.keepIncomingMedia,
      closedBudgetMs: opts.closedBudgetMs,
      logger: opts.logger,
      engine: opts.engine,
      authStore: {
        load: (sessionId, stamp) => retryTransient(() => store.load(sessionId, stamp)),
        save: (sessionId, blob, stamp) => retryTransient(() => store.save(sessionId, blob, stamp)),
        delete: (sessionId, stamp) => retryTransient(() => store.delete(sessionId, stamp)),
        has: (sessionId) => retryTransient(() => store.has(sessionId)),
      },
      startTurn: (accountId) => this.queue.turn(accountId),
      onClose: (s) => {
        if (this.sessions.get(s.accountId) !== s) return;
        this.sessions.delete(s.accountId);
        this.queue.cancel(s.accountId);
        // Closed by its pipeline too (an engine that ended by itself, a fence-out), not only by a stop:
        // the account's next start waits for this engine to be down (a microtask later, its stop has
        // been asked for), and a fencing stop of the workspace still reaches it.
        if (!this.stopping.has(s.accountId))
          this.track(
            s,
            Promise.resolve().then(() => s.engineDown()),
          );
        if (s.status === "failed") this.retries.failed(s.accountId, s.workspaceId, s.reason);
      },
      onConnected: (accountId) => {
        this.retries.connected(accountId);
        opts.onConnected?.(accountId);
      },
      overCapacity: () => (opts.capacity ?? 0) > 0 && this.sessions.size > (opts.capacity ?? 0),
    };
    this.retries = new FailureRetry({
      baseMs: opts.failedRetry?.baseMs ?? 5000,
      maxMs: opts.failedRetry?.maxMs ?? 300000,
      retry: (accountId) => this.retryFailed(accountId),
      logger: opts.logger,
    });
  }

  /** Starts again an account that failed here for a retryable reason, if it still should run here:
   * wanted running, still `failed`, and still carrying this node's fence. */
  private async retryFailed(accountId: string): Promise<void> {
    if (this.sessions.has(accountId) || this.opening.has(accountId)) return;
    const [doc] = await this.opts.repo.byIds([accountId]);
    if (!doc || doc.desiredState !== "running" || doc.status !== "failed") return;
    const fence = this.ownership.current(doc.workspaceId);
    if (!fence || !carriesFence(doc, fence)) return;
    await this.startClaimed(doc, null);
  }

  /** Ownership may be replaced (placement wires the real one in after construction). */
  setOwnership(ownership: Ownership): void {
    this.ownership = ownership;
  }

  get size(): number {
    return this.sessions.size;
  }

  has(accountId: string): boolean {
    return this.sessions.has(accountId);
  }

  info(accountId: string): LocalSessionInfo | null {
    return this.sessions.get(accountId)?.info ?? null;
  }

  local(): LocalSessionInfo[] {
    return [...this.sessions.values()].map((s) => s.info);
  }

  /** The QRs on screen of a workspace's accounts scanning here. */
  qrs(workspaceId: string): { accountId: string; qr: QrView }[] {
    const out: { accountId: string; qr: QrView }[] = [];
    for (const s of this.sessions.values()) {
      const qr = s.workspaceId === workspaceId ? s.screenQr : null;
      if (qr) out.push({ accountId: s.accountId, qr });
    }
    return out;
  }

  /** The QR on screen, or null when the account is not scanning here. */
  qr(accountId: string): QrView | null {
    return this.sessions.get(accountId)?.screenQr ?? null;
  }

  /**
   * Claims the account for this node and queues its engine start. Idempotent: a running account is
   * left alone. Resolves once queued (the account shows `initializing` until its engine starts).
   */
  async start(doc: AccountDoc): Promise<LocalSessionInfo> {
    // A retry still due fires on an open or running session: it does nothing. Forgotten (its backoff
    // too) once started, not before: a start that fails leaves a failed account its retry.
    const info = await this.startClaimed(doc, null);
    this.retries.forget(doc._id);
    return info;
  }

  /** The fence under which this node may create and run the workspace's accounts (claiming it). */
  async fenceFor(workspaceId: string): Promise<Fence> {
    return this.ownership.current(workspaceId) ?? (await this.ownership.acquire(workspaceId));
  }

  /**
   * Records a new account, carrying this node's fence (`fenceFor`) and `initializing`, with `record`
   * (the insert, then its announcement), and starts it: no claim to write, no saved auth state to
   * read. Counted as opening from the start, so a reconciler pass that reads the new document in the
   * meantime leaves it alone. Rejects when `record` does (nothing started).
   */
  async createAndStart(doc: AccountDoc, record: () => Promise<void>): Promise<LocalSessionInfo> {
    // A repeat of an idempotent create, here while the first is still being recorded or opened: it
    // records nothing (the caller answers with the first's account once it is stored).
    if (this.opening.has(doc._id) || this.sessions.has(doc._id)) throw createUnderWay(doc._id);
    const pending: Promise<LocalSessionInfo> = (async () => {
      await record();
      return this.open(doc, { previous: "initializing", neverOwned: true });
    })().finally(() => {
      if (this.opening.get(doc._id) === pending) this.opening.delete(doc._id);
    });
    this.opening.set(doc._id, pending);
    return pending;
  }

  /**
   * Starts accounts of workspaces this node owns, claiming them in one update per workspace (plus one
   * read) instead of one claim per account: the reconciler's restore after a failover. Accounts another
   * owner holds are left alone (not started); resolves once all are queued.
   */
  async startMany(docs: AccountDoc[]): Promise<LocalSessionInfo[]> {
    // Per workspace, the accounts to claim: `lost` ones were live on a node that is gone.
    const byWorkspace = new Map<string, { fence: Fence; ids: string[]; lost: string[] }>();
    const before = new Map<string, AccountStatus>();
    // Already stamped with our fence and `initializing` (a start that was lost): nothing to claim.
    const ours: AccountDoc[] = [];
    for (const doc of docs) {
      if (this.sessions.has(doc._id) || this.opening.has(doc._id) || !knownEngine(doc.engine)) continue;
      const fence = this.ownership.current(doc.workspaceId);
      if (!fence) continue;
      before.set(doc._id, doc.status);
      // From now on a stop or logout of it finds it here (it may come during the claims below).
      this.restoring.add(doc._id);
      if (carriesFence(doc, fence) && awaitsStart(doc)) {
        ours.push(doc);
        continue;
      }
      const entry = byWorkspace.get(doc.workspaceId) ?? { fence, ids: [], lost: [] };
      const gone = doc.node && doc.node !== this.opts.nodeId && this.ownership.isLive?.(doc.node) === false;
      if (gone && LOST_WHEN.has(doc.status)) {
        // Its node was lost while it ran: it shows `disconnected`/`node_lost` until it is back here.
        entry.lost.push(doc._id);
      } else entry.ids.push(doc._id);
      byWorkspace.set(doc.workspaceId, entry);
    }
    const started: LocalSessionInfo[] = [];
    try {
      await this.claimForRestore(ours, byWorkspace);
      // Opened as many at a time as engines start (each open writes `initializing`).
      await this.openInTurn(ours, before, started, Math.max(1, this.opts.startConcurrency ?? 2));
    } finally {
      // Not opened (another owner's, stopped since it was read, or failed): no longer queued.
      for (const id of before.keys()) this.restoring.delete(id);
    }
    return started;
  }

  /** Claims a restore's accounts (one update per workspace) and adds those now carrying this node's
   * fence and still wanted running to `ours`; re-reads the ones `ours` already held. */
  private async claimForRestore(
    ours: AccountDoc[],
    byWorkspace: Map<string, { fence: Fence; ids: string[]; lost: string[] }>,
  ): Promise<void> {
    if (ours.length > 0) {
      // Read again: one stopped since the caller read it (a stop that found nothing to stop) stays so.
      const wanted = new Set(
        (await this.opts.repo.byIds(ours.map((d) => d._id)))
          .filter((d) => d.desiredState === "running")
          .map((d) => d._id),
      );
      ours.splice(0, ours.length, ...ours.filter((d) => wanted.has(d._id)));
    }
    if (byWorkspace.size > 0) {
      // The claim also records the status: one write per workspace (two with lost accounts).
      const now = new Date();
      const patch = initializingPatch(now);
      const lostPatch = { ...patch, ...nodeLost(this.opts.nodeId) };
      await Promise.all(
        [...byWorkspace].flatMap(([ws, { fence, ids, lost }]) => [
          this.opts.repo.claimMany(ws, ids, fence, patch),
          this.opts.repo.claimMany(ws, lost, fence, lostPatch),
        ]),
      );
      const claimed = await this.opts.repo.byIds(
        [...byWorkspace.values()].flatMap((e) => [...e.ids, ...e.lost]),
      );
      // Only what carries our fence: another owner's account (a newer epoch) is not ours to run; nor is
      // one stopped since it was read (the claim left it).
      for (const doc of claimed) {
        const fence = byWorkspace.get(doc.workspaceId)?.fence;
        if (fence !== undefined && carriesFence(doc, fence) && doc.desiredState === "running") ours.push(doc);
      }
    }
  }

  /** Opens the claimed accounts `limit` at a time, each unless a stop took it out of the queue. */
  private async openInTurn(
    ours: AccountDoc[],
    before: Map<string, AccountStatus>,
    started: LocalSessionInfo[],
    limit: number,
  ): Promise<void> {
    await Promise.all(
      Array.from({ length: Math.min(limit, ours.length) }, async () => {
        for (let doc = ours.shift(); doc !== undefined; doc = ours.shift()) {
          // Stopped (logged out, deleted) while it waited its turn: the stop found nothing to stop.
          if (!this.restoring.delete(doc._id)) continue;
          try {
            const previous = before.get(doc._id) ?? doc.status;
            const wrote =
              awaitsStart(doc) && doc.status === "disconnected" ? nodeLost(this.opts.nodeId) : undefined;
            started.push(await this.startClaimed(doc, { previous, neverOwned: false, wrote }));
          } catch (err) {
            this.opts.logger.debug(`Starting ${doc._id} failed: ${(err as Error).message}`);
          }
        }
      }),
    );
  }

  /** `stamped`: `doc` already carries this node's fence and `initializing` (written over `previous`). */
  private async startClaimed(doc: AccountDoc, stamped: ClaimOutcome | null): Promise<LocalSessionInfo> {
    const running = this.sessions.get(doc._id);
    if (running) return running.info;
    let pending = this.opening.get(doc._id);
    if (!pending) {
      pending = this.open(doc, stamped).finally(() => this.opening.delete(doc._id));
      this.opening.set(doc._id, pending);
    }
    return pending;
  }

  /** Stops the engine; `persist: false` (shutdown, fencing) writes and broadcasts nothing. */
  async stop(accountId: string, { persist = true } = {}): Promise<AccountStatus | null> {
    // A failed account's retry stays when nothing runs here (a restart's stop, whose start may fail):
    // it starts nothing the account is no longer wanted for (`retryFailed` reads that first).
    if (this.sessions.has(accountId) || this.opening.has(accountId) || this.restoring.has(accountId))
      this.retries.forget(accountId);
    this.restoring.delete(accountId);
    await this.opened(accountId);
    const s = this.sessions.get(accountId);
    if (s) return this.stopSession(s, { persist });
    // Another stop is under way (its session already closed): done when its engine is.
    await this.stopping.get(accountId)?.done;
    return null;
  }

  /** Unlinks the device: auth state deleted, account `logged_out`. Null when not running here (after
   * a stop under way has ended: its engine's last save would otherwise bring back the state the
   * caller deletes next). No retry of a failure follows it. */
  async logout(accountId: string): Promise<AccountStatus | null> {
    this.retries.forget(accountId);
    this.restoring.delete(accountId);
    await this.opened(accountId);
    const s = this.sessions.get(accountId);
    if (s) {
      // Remembered until its `logged_out` is written: a start meanwhile (a restore that read the
      // account before) waits for it, and then finds it wanted stopped.
      const done = s.logout();
      this.track(s, done);
      return done;
    }
    await this.stopping.get(accountId)?.done;
    return null;
  }

  /**
   * Runs `op` against the account's engine, then waits until the changes it caused are applied, so the
   * caller sees the resulting status. InvalidStateError when no engine runs here (yet).
   */
  async drive<T>(
    accountId: string,
    op: (engine: Engine) => Promise<T>,
  ): Promise<{ result: T; status: AccountStatus }> {
    const s = this.sessions.get(accountId);
    if (!s) throw noEngineError(accountId, null);
    return s.drive(op);
  }

  /** Sends through the account's engine (Session.send); InvalidStateError when none runs here (yet). */
  async send(accountId: string, message: OutboundMessage): Promise<{ id: string }> {
    const s = this.sessions.get(accountId);
    if (!s) throw noEngineError(accountId, null);
    return s.send(message);
  }

  /** Stops every session of a workspace this node hands over while it still holds it: each engine
   * closes cleanly, then saves its auth state (Chromium commits a page's storage to disk seconds after
   * a write, and at the latest on close: a copy taken while it runs may miss a link just made). No
   * status is written; stops of it already under way are waited for. */
  async handOverWorkspace(workspaceId: string): Promise<number> {
    this.retries.cancelWorkspace(workspaceId);
    const victims = [...this.sessions.values()].filter((s) => s.workspaceId === workspaceId);
    const underWay = [...this.stopping.values()].filter((e) => e.session.workspaceId === workspaceId);
    await Promise.all([
      ...victims.map((s) => this.stopSession(s, { persist: false })),
      ...underWay.map((e) => e.done),
    ]);
    return victims.length;
  }

  /** Stops every session of a workspace without writing (this node lost it: fencing); graceful stops
   * of it still under way are forced too. */
  async stopWorkspace(workspaceId: string): Promise<number> {
    this.retries.cancelWorkspace(workspaceId);
    const victims = [...this.sessions.values()].filter((s) => s.workspaceId === workspaceId);
    await Promise.all([
      ...victims.map((s) => this.stopSession(s, { persist: false, force: true })),
      ...this.stoppingOf((s) => s.workspaceId === workspaceId).map((s) => s.kill()),
    ]);
    return victims.length;
  }

  /** Stops everything without writing (shutdown, self-fencing). */
  async stopAll(): Promise<void> {
    this.retries.cancelWorkspace();
    // Where this node holds no fence any more (self-fencing), engines are killed, not closed: a
    // graceful close can outlast the lease, and the next owner may then start its own browser.
    const unfenced = (s: Session) => this.ownership.current(s.workspaceId) === null;
    await Promise.all([
      ...[...this.sessions.values()].map((s) => this.stopSession(s, { persist: false, force: unfenced(s) })),
      ...this.stoppingOf(unfenced).map((s) => s.kill()),
    ]);
  }

  /** Kills every session, and every stop under way, without writing (a node's stop that took too long:
   * its lease must not wait for a save that hangs). */
  async killAll(): Promise<void> {
    this.retries.cancelWorkspace();
    await Promise.all([
      ...[...this.sessions.values()].map((s) => this.stopSession(s, { persist: false, force: true })),
      ...this.stoppingOf(() => true).map((s) => s.kill()),
    ]);
  }

  /** Sessions whose stop is under way (closed, their engine not down yet) that match `which`. */
  private stoppingOf(which: (s: Session) => boolean): Session[] {
    return [...this.stopping.values()].map((entry) => entry.session).filter(which);
  }

  /** Stops `s`, remembered in `stopping` until its engine is down. */
  private stopSession(s: Session, opts: { persist: boolean; force?: boolean }): Promise<AccountStatus> {
    const stop = s.stop(opts);
    this.track(s, stop);
    return stop;
  }

  /** Remembers `s` in `stopping` until `done` settles. */
  private track(s: Session, done: Promise<unknown>): void {
    const entry = { done: done.catch(() => undefined), session: s };
    this.stopping.set(s.accountId, entry);
    void entry.done.then(() => {
      if (this.stopping.get(s.accountId) === entry) this.stopping.delete(s.accountId);
    });
  }

  // ---- opening ----

  /** Why the claim of `doc` matched nothing: deleted meanwhile (404), stopped or logged out meanwhile
   * (409), a delete begun on it (409, as a restart of it answers), or a newer owner holds it. */
  private async claimRefused(doc: AccountDoc, fence: Fence): Promise<Error> {
    const now = await Promise.resolve()
      .then(() => this.opts.repo.get(doc.workspaceId, doc._id))
      .catch(() => undefined);
    if (now === null) return new NotFoundError("Account", doc._id);
    if (now && !now.deletingAt && now.desiredState !== "running")
      return new InvalidStateError(`Account '${doc._id}' was stopped while it started; start it again`, {
        accountId: doc._id,
        status: now.status,
      });
    if (now?.deletingAt)
      return new InvalidStateError(
        `Account '${doc._id}' is being deleted (a delete did not finish): delete it again`,
        {
          accountId: doc._id,
        },
      );
    return new NotOwnerError(doc._id, fence.node, {
      accountId: doc._id,
      workspaceId: doc.workspaceId,
      fence,
    });
  }

  /** Waits for a start of the account still claiming (so a stop right after a start stops it). */
  private async opened(accountId: string): Promise<void> {
    await this.opening.get(accountId)?.catch(() => undefined);
  }

  /**
   * Claims the account (unless `doc` already carries this node's fence and `initializing`: read back
   * after startMany's claim, or just created here) and queues its engine start. The claim writes
   * `initializing` with the fence, so opening costs at most one database write; the event says which
   * status it replaced.
   */
  private async open(doc: AccountDoc, stamped: ClaimOutcome | null): Promise<LocalSessionInfo> {
    resolveEngine(doc.engine);
    // A stop of the account still under way: its engine goes first, and `doc` (read before it) may no
    // longer be wanted running, so it is claimed (which reads that) rather than taken as stamped.
    const stop = this.stopping.get(doc._id);
    if (stop) await stop.done;
    const fence = await this.fenceFor(doc.workspaceId);
    const result =
      stamped !== null && !stop && carriesFence(doc, fence) && awaitsStart(doc)
        ? { doc, ...stamped }
        : await this.opts.repo.claimOne(doc._id, fence, initializingPatch(new Date()), doc.status);
    if (!result) throw await this.claimRefused(doc, fence);
    // The workspace lost meanwhile (the lease lapsed during the claim's write): its sessions were
    // stopped, and this one would run unfenced beside the next owner's.
    const now = this.ownership.current(doc.workspaceId);
    if (now?.node !== fence.node || now.epoch !== fence.epoch)
      throw new WorkspaceUnavailableError(doc.workspaceId, "ownership lost while the account was claimed");
    const { doc: claimed, ...claim } = result;
    const s = new Session(claimed, fence, claim, this.deps);
    this.sessions.set(s.accountId, s);
    await s.announceClaim();
    this.queue.push(s.accountId, () => s.launch());
    return s.info;
  }
}

function knownEngine(name: string): boolean {
  try {
    resolveEngine(name);
    return true;
  } catch {
    return false;
  }
}

/** Live statuses whose session is lost with its node (an `initializing` one had not run yet). */
const LOST_WHEN: ReadonlySet<AccountStatus> = new Set([
  "qr_scanning",
  "authenticated",
  "connected",
  "disconnected",
]);

/** What a restore after a lost node shows until the session is back. */
function nodeLost(restoringOn: string): { status: "disconnected"; reason: "node_lost"; message: string } {
  return {
    status: "disconnected",
    reason: "node_lost",
    message: `Its node was lost; restoring the session on ${restoringOn}`,
  };
}
