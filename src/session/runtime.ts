// The sessions of one node: running engines keyed by account id, a start queue with a concurrency
// limit, and, per account, the pipeline that turns engine events into lifecycle transitions
// (pipeline.ts: applied in order, persisted with a fenced write, then broadcast).
import type { AccountDoc, QrView } from "../accounts/types.ts";
import type { Engine, EngineOptions } from "../engines/base.ts";
import { resolveEngine } from "../engines/index.ts";
import { InvalidStateError, NotOwnerError } from "../errors.ts";
import { type AccountStatus, type FailureReason, FAILURE_REASONS } from "../lifecycle/states.ts";
import type { AccountsRepo } from "../store/accounts-repo.ts";
import type { AuthStore } from "../store/auth-store.ts";
import { retryTransient } from "../store/mongo.ts";
import { bindEngineEvents } from "./engine-events.ts";
import { carriesFence, type Fence, type Ownership } from "./ownership.ts";
import { SessionPipeline, type LiveSession } from "./pipeline.ts";
import { StartQueue } from "./start-queue.ts";
import { initializingPatch } from "./status-run.ts";

type Logger = NonNullable<EngineOptions["logger"]>;

export interface RuntimeOptions {
  nodeId: string;
  repo: AccountsRepo;
  authStore: AuthStore;
  ownership: Ownership;
  /** The broker's `broadcast` (never `emit`: every gateway relays account events). */
  broadcast: (event: string, payload: unknown) => unknown;
  /** Engine settings shared by every session of the node. */
  engine: Pick<EngineOptions, "qr" | "chromiumPath" | "profileDir" | "startupTimeoutMs">;
  /** Concurrent engine starts. @default 2 */
  startConcurrency?: number;
  logger: Logger;
}

/** A running session as `session.local` reports it. */
export interface LocalSessionInfo {
  accountId: string;
  workspaceId: string;
  sessionId: string;
  engine: string;
  status: AccountStatus;
  node: string;
  epoch: number;
}

/** How a document read back already carries this node's fence and `initializing`. */
interface Stamped {
  /** The status the stamp replaced (the `previousStatus` of the initializing event). */
  previous: AccountStatus;
  /** No engine ever ran the account: it has no saved auth state. */
  neverOwned: boolean;
}

/** Grace beyond the engine's startup watchdog before the runtime gives up on a start that never returns. */
const START_GRACE_MS = 1000;

export class SessionRuntime {
  private readonly sessions = new Map<string, LiveSession>();
  private readonly opening = new Map<string, Promise<LocalSessionInfo>>();
  private readonly queue: StartQueue;
  private readonly pipeline: SessionPipeline;

  /** The AuthStore given to engines: the same store, retrying transient database errors. */
  private readonly authStore: AuthStore;

  constructor(private readonly opts: RuntimeOptions) {
    this.queue = new StartQueue(opts.startConcurrency ?? 2);
    this.pipeline = new SessionPipeline({
      repo: opts.repo,
      ownership: () => this.opts.ownership,
      broadcast: opts.broadcast,
      logger: opts.logger,
      release: async (s) => {
        this.detach(s);
        await this.shutEngine(s);
      },
      fenceOut: (s) => this.fenceOut(s),
    });
    const store = opts.authStore;
    this.authStore = {
      load: (sessionId) => retryTransient(() => store.load(sessionId)),
      save: (sessionId, blob) => retryTransient(() => store.save(sessionId, blob)),
      delete: (sessionId) => retryTransient(() => store.delete(sessionId)),
      has: (sessionId) => retryTransient(() => store.has(sessionId)),
    };
  }

  /** Ownership may be replaced (placement wires the real one in after construction). */
  setOwnership(ownership: Ownership): void {
    (this.opts as { ownership: Ownership }).ownership = ownership;
  }

  get size(): number {
    return this.sessions.size;
  }

  has(accountId: string): boolean {
    return this.sessions.has(accountId);
  }

  info(accountId: string): LocalSessionInfo | null {
    const s = this.sessions.get(accountId);
    return s ? this.describe(s) : null;
  }

  local(): LocalSessionInfo[] {
    return [...this.sessions.values()].map((s) => this.describe(s));
  }

  /** The QRs on screen of a workspace's accounts scanning here. */
  qrs(workspaceId: string): { accountId: string; qr: QrView }[] {
    const out: { accountId: string; qr: QrView }[] = [];
    for (const s of this.sessions.values())
      if (s.workspaceId === workspaceId && s.status === "qr_scanning" && s.qr)
        out.push({ accountId: s.accountId, qr: s.qr });
    return out;
  }

  /** The QR on screen, or null when the account is not scanning here. */
  qr(accountId: string): QrView | null {
    const s = this.sessions.get(accountId);
    return s && s.status === "qr_scanning" ? s.qr : null;
  }

  /**
   * Claims the account for this node and queues its engine start. Idempotent: a running account is
   * left alone. Resolves once queued (the account shows `initializing` until its engine starts).
   */
  async start(doc: AccountDoc): Promise<LocalSessionInfo> {
    return this.startClaimed(doc, null);
  }

  /** The fence under which this node may create and run the workspace's accounts (claiming it). */
  async fenceFor(workspaceId: string): Promise<Fence> {
    return this.opts.ownership.current(workspaceId) ?? (await this.opts.ownership.acquire(workspaceId));
  }

  /**
   * Records a new account, carrying this node's fence (`fenceFor`) and `initializing`, with `record`
   * (the insert, then its announcement), and starts it: no claim to write, no saved auth state to
   * read. Counted as opening from the start, so a reconciler pass that reads the new document in the
   * meantime leaves it alone. Rejects when `record` does (nothing started).
   */
  async createAndStart(doc: AccountDoc, record: () => Promise<void>): Promise<LocalSessionInfo> {
    const pending = (async () => {
      await record();
      return this.open(doc, { previous: "initializing", neverOwned: true });
    })().finally(() => this.opening.delete(doc._id));
    this.opening.set(doc._id, pending);
    return pending;
  }

  /**
   * Starts accounts of workspaces this node owns, claiming them in one update per workspace (plus one
   * read) instead of one claim per account: the reconciler's restore after a failover. Accounts another
   * owner holds are left alone (not started); resolves once all are queued.
   */
  async startMany(docs: AccountDoc[]): Promise<LocalSessionInfo[]> {
    const byWorkspace = new Map<string, { fence: Fence; ids: string[] }>();
    const before = new Map<string, AccountStatus>();
    // Already stamped with our fence and `initializing` (a start that was lost): nothing to claim.
    const ours: AccountDoc[] = [];
    for (const doc of docs) {
      if (this.sessions.has(doc._id) || this.opening.has(doc._id) || !knownEngine(doc.engine)) continue;
      const fence = this.opts.ownership.current(doc.workspaceId);
      if (!fence) continue;
      before.set(doc._id, doc.status);
      if (carriesFence(doc, fence) && doc.status === "initializing") {
        ours.push(doc);
        continue;
      }
      const entry = byWorkspace.get(doc.workspaceId) ?? { fence, ids: [] };
      entry.ids.push(doc._id);
      byWorkspace.set(doc.workspaceId, entry);
    }
    if (byWorkspace.size > 0) {
      // The claim also records `initializing`: one write per workspace instead of one per account.
      const patch = initializingPatch(new Date());
      await Promise.all(
        [...byWorkspace].map(([ws, { fence, ids }]) => this.opts.repo.claimMany(ws, ids, fence, patch)),
      );
      const claimed = await this.opts.repo.byIds([...byWorkspace.values()].flatMap((e) => e.ids));
      // Only what carries our fence: another owner's account (a newer epoch) is not ours to run.
      for (const doc of claimed) {
        const fence = byWorkspace.get(doc.workspaceId)?.fence;
        if (fence !== undefined && carriesFence(doc, fence)) ours.push(doc);
      }
    }
    // Opened as many at a time as engines start (each open writes `initializing`).
    const started: LocalSessionInfo[] = [];
    const limit = Math.max(1, this.opts.startConcurrency ?? 2);
    await Promise.all(
      Array.from({ length: Math.min(limit, ours.length) }, async () => {
        for (let doc = ours.shift(); doc !== undefined; doc = ours.shift()) {
          try {
            const previous = before.get(doc._id) ?? doc.status;
            started.push(await this.startClaimed(doc, { previous, neverOwned: false }));
          } catch (err) {
            this.opts.logger.debug(`Starting ${doc._id} failed: ${(err as Error).message}`);
          }
        }
      }),
    );
    return started;
  }

  /** `stamped`: `doc` already carries this node's fence and `initializing` (written over `previous`). */
  private async startClaimed(doc: AccountDoc, stamped: Stamped | null): Promise<LocalSessionInfo> {
    const running = this.sessions.get(doc._id);
    if (running) return this.describe(running);
    let pending = this.opening.get(doc._id);
    if (!pending) {
      pending = this.open(doc, stamped).finally(() => this.opening.delete(doc._id));
      this.opening.set(doc._id, pending);
    }
    return pending;
  }

  /** Stops the engine; `persist: false` (shutdown, fencing) writes and broadcasts nothing. */
  async stop(accountId: string, { persist = true } = {}): Promise<AccountStatus | null> {
    await this.opened(accountId);
    const s = this.sessions.get(accountId);
    if (!s) return null;
    this.detach(s);
    await this.shutEngine(s);
    if (persist) await this.pipeline.enqueue(s, { kind: "status", status: "stopped" }, { force: true });
    else await s.chain;
    return s.status;
  }

  /** Unlinks the device: auth state deleted, account `logged_out`. Null when not running here. */
  async logout(accountId: string): Promise<AccountStatus | null> {
    await this.opened(accountId);
    const s = this.sessions.get(accountId);
    if (!s) return null;
    if (s.engine) await s.engine.logout();
    else {
      // Still waiting for a start slot: nothing runs, so unlinking is deleting the saved state.
      this.detach(s);
      await this.authStore.delete(s.sessionId);
      await this.pipeline.enqueue(s, { kind: "status", status: "logged_out" }, { force: true });
    }
    await s.chain;
    return s.status;
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
    if (!s?.engine) {
      throw new InvalidStateError(`Account '${accountId}' has no running engine`, {
        accountId,
        status: s?.status ?? null,
      });
    }
    const result = await op(s.engine);
    await s.chain;
    return { result, status: s.status };
  }

  /** Stops every session of a workspace without writing (this node lost it: fencing). */
  async stopWorkspace(workspaceId: string): Promise<number> {
    const victims = [...this.sessions.values()].filter((s) => s.workspaceId === workspaceId);
    await this.silence(victims);
    return victims.length;
  }

  /** Stops everything without writing (shutdown, self-fencing). */
  async stopAll(): Promise<void> {
    await this.silence([...this.sessions.values()]);
  }

  // ---- opening and launching ----

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
  private async open(doc: AccountDoc, stamped: Stamped | null): Promise<LocalSessionInfo> {
    resolveEngine(doc.engine);
    const fence = await this.fenceFor(doc.workspaceId);
    const result =
      stamped !== null && carriesFence(doc, fence) && doc.status === "initializing"
        ? { doc, ...stamped }
        : await this.opts.repo.claimOne(doc._id, fence, initializingPatch(new Date()));
    if (!result) {
      throw new NotOwnerError(doc._id, fence.node, {
        accountId: doc._id,
        workspaceId: doc.workspaceId,
        fence,
      });
    }
    const { doc: claimedDoc, neverOwned, previous } = result;
    const s: LiveSession = {
      accountId: claimedDoc._id,
      workspaceId: claimedDoc.workspaceId,
      sessionId: claimedDoc.sessionId,
      engineName: claimedDoc.engine,
      fence,
      status: previous,
      phoneNumber: claimedDoc.phoneNumber ?? null,
      qr: null,
      engine: null,
      unbind: null,
      backlog: [],
      draining: false,
      chain: Promise.resolve(),
      closed: false,
      neverOwned,
    };
    this.sessions.set(s.accountId, s);
    await this.pipeline.enqueue(s, { kind: "status", status: "initializing" }, { written: true });
    this.queue.push(s.accountId, () => this.launch(s));
    return this.describe(s);
  }

  private async launch(s: LiveSession): Promise<void> {
    if (s.closed) return;
    try {
      const engine = resolveEngine(s.engineName)({
        ...this.opts.engine,
        accountId: s.accountId,
        workspaceId: s.workspaceId,
        sessionId: s.sessionId,
        authStore: this.authStoreFor(s),
        logger: this.opts.logger,
        startTurn: () => this.queue.turn(s.accountId),
      });
      s.engine = engine;
      s.unbind = bindEngineEvents(engine, (change) => void this.pipeline.enqueue(s, change));
      if ((await this.startWithin(engine)) === "hung") {
        // The engine's own watchdog should have fired; this backstop frees the start slot regardless.
        if (!s.closed) {
          const message = `Engine start did not return within ${this.startLimitMs()} ms`;
          await this.pipeline.enqueue(s, {
            kind: "status",
            status: "failed",
            reason: "startup_timeout",
            message,
          });
        }
        return;
      }
      if (s.closed) await engine.stop();
    } catch (err) {
      if (s.closed) return;
      const reason = failureReasonOf(err);
      await this.pipeline.enqueue(s, {
        kind: "status",
        status: "failed",
        reason,
        message: (err as Error).message,
      });
    }
  }

  /**
   * The AuthStore of one session. An account never owned before has no saved state (only its own
   * engines save under its unique sessionId, and none ran): its engine's first loads need no database
   * read, until it saves something.
   */
  private authStoreFor(s: LiveSession): AuthStore {
    const store = this.authStore;
    if (!s.neverOwned) return store;
    let nothingSaved = true;
    return {
      load: (sessionId) => (nothingSaved ? Promise.resolve(null) : store.load(sessionId)),
      has: (sessionId) => (nothingSaved ? Promise.resolve(false) : store.has(sessionId)),
      save: (sessionId, blob) => {
        nothingSaved = false;
        return store.save(sessionId, blob);
      },
      delete: (sessionId) => store.delete(sessionId),
    };
  }

  private startLimitMs(): number {
    return (this.opts.engine.startupTimeoutMs ?? 60000) + START_GRACE_MS;
  }

  private async startWithin(engine: Engine): Promise<"started" | "hung"> {
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<"hung">((resolve) => {
      timer = setTimeout(() => resolve("hung"), this.startLimitMs());
    });
    try {
      return await Promise.race([engine.start().then(() => "started" as const), hung]);
    } finally {
      clearTimeout(timer);
    }
  }

  // ---- closing ----

  /** Marks the session closed and forgets it (its pipeline may still finish a forced change). */
  private detach(s: LiveSession): void {
    s.closed = true;
    if (this.sessions.get(s.accountId) === s) {
      this.sessions.delete(s.accountId);
      this.queue.cancel(s.accountId);
    }
  }

  private async shutEngine(s: LiveSession): Promise<void> {
    s.unbind?.();
    s.unbind = null;
    const engine = s.engine;
    s.engine = null;
    if (engine)
      await engine.stop().catch((err) => this.opts.logger.warn(`Stopping ${s.accountId} failed`, err));
  }

  /** A write matched nothing: another owner (or a delete) took the account. Stop, write nothing. */
  private async fenceOut(s: LiveSession): Promise<void> {
    this.opts.logger.warn(
      `Session ${s.accountId}: fenced out (epoch ${s.fence.epoch} on ${s.fence.node}); stopping`,
    );
    this.detach(s);
    await this.shutEngine(s);
  }

  private async silence(victims: LiveSession[]): Promise<void> {
    for (const s of victims) this.detach(s);
    await Promise.all(victims.map((s) => this.shutEngine(s)));
    await Promise.all(victims.map((s) => s.chain));
  }

  private describe(s: LiveSession): LocalSessionInfo {
    return {
      accountId: s.accountId,
      workspaceId: s.workspaceId,
      sessionId: s.sessionId,
      engine: s.engineName,
      status: s.status,
      node: s.fence.node,
      epoch: s.fence.epoch,
    };
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

/** An engine start that throws may say why in `data.reason`; otherwise it is an engine error. */
function failureReasonOf(err: unknown): FailureReason {
  const reason = (err as { data?: { reason?: string } })?.data?.reason;
  return (FAILURE_REASONS as readonly string[]).includes(reason ?? "")
    ? (reason as FailureReason)
    : "engine_error";
}
