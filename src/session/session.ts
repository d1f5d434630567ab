// One account's session on this node, from its claim until it closes: its status (kept current by its
// pipeline), its engine, and the ways it ends — stopped, logged out, released after the engine ended by
// itself, or fenced out when another owner took the account.
import type { AccountDoc, QrView } from "../accounts/types.ts";
import type { Engine, EngineOptions } from "../engines/base.ts";
import type { OutboundMessage } from "../messages/types.ts";
import { resolveEngine } from "../engines/index.ts";
import { InvalidStateError, NotOwnerError } from "../errors.ts";
import { type AccountStatus, type FailureReason, isFailureReason } from "../lifecycle/states.ts";
import type { AuthStore } from "../store/auth-store.ts";
import { bindEngineEvents } from "./engine-events.ts";
import type { Fence } from "../placement/fence.ts";
import { SessionPipeline, type PipelineDeps, type PipelineSession } from "./pipeline.ts";

/** Engine settings shared by every session of the node. */
export type EngineSettings = Pick<
  EngineOptions,
  | "qr"
  | "chromiumPath"
  | "chromiumSingleProcess"
  | "profileDir"
  | "startupTimeoutMs"
  | "simulatedAckMs"
  | "simulatedSendMs"
>;

/** What every session of a node shares; the runtime builds it once. */
export interface SessionDeps extends PipelineDeps {
  engine: EngineSettings;
  /** The node's AuthStore (retrying transient database errors). */
  authStore: AuthStore;
  /** A turn in the node's start queue, for a start the engine makes by itself. */
  startTurn: (accountId: string) => Promise<() => void>;
  /** The session closed: its runtime forgets it and drops its start if still queued. */
  onClose: (s: Session) => void;
  /** The node runs more sessions than its capacity (this one included). */
  overCapacity?: () => boolean;
}

/** How the claim that opened the session found the account. */
export interface ClaimOutcome {
  /** The status the claim replaced (the `previousStatus` of its event). */
  previous: AccountStatus;
  /** What the claim wrote when not `initializing`: `disconnected`/`node_lost` (a restore). */
  wrote?: { status: "disconnected"; reason: "node_lost"; message: string };
  /** No engine ever ran the account: it has no saved auth state. */
  neverOwned: boolean;
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

/** Grace beyond the engine's startup watchdog before a start that never returns is given up. */
const START_GRACE_MS = 1000;

export function noEngineError(accountId: string, status: AccountStatus | null): InvalidStateError {
  return new InvalidStateError(`Account '${accountId}' has no running engine`, { accountId, status });
}

export class Session implements PipelineSession {
  readonly accountId: string;
  readonly workspaceId: string;
  readonly sessionId: string;
  readonly engineName: string;
  /** Written by the session's pipeline only. */
  status: AccountStatus;
  reason: FailureReason | null = null;
  phoneNumber: string | null;
  qr: QrView | null = null;
  private ended = false;
  private engine: Engine | null = null;
  /** The engine of a stop under way: a forced stop (the fence lost meanwhile) kills it at once. */
  private stoppingEngine: Engine | null = null;
  private unbind: (() => void) | null = null;
  private readonly neverOwned: boolean;
  private readonly claimWrote: ClaimOutcome["wrote"] | null;
  private readonly pipeline: SessionPipeline;
  /** The engine's latest stop, settled either way (engineDown). */
  private engineStop: Promise<void> = Promise.resolve();

  /** `doc` as the claim left it: carrying `fence` and `initializing`. */
  constructor(
    doc: AccountDoc,
    readonly fence: Fence,
    claim: ClaimOutcome,
    private readonly deps: SessionDeps,
  ) {
    this.accountId = doc._id;
    this.workspaceId = doc.workspaceId;
    this.sessionId = doc.sessionId;
    this.engineName = doc.engine;
    this.status = claim.previous;
    this.phoneNumber = doc.phoneNumber ?? null;
    this.neverOwned = claim.neverOwned;
    this.claimWrote = claim.wrote ?? null;
    this.pipeline = new SessionPipeline(this, deps, {
      release: () => this.halt(),
      fenceOut: () => this.fenceOut(),
    });
  }

  /** Stopping, finished or fenced out: engine events are no longer applied. */
  get closed(): boolean {
    return this.ended;
  }

  get info(): LocalSessionInfo {
    return {
      accountId: this.accountId,
      workspaceId: this.workspaceId,
      sessionId: this.sessionId,
      engine: this.engineName,
      status: this.status,
      node: this.fence.node,
      epoch: this.fence.epoch,
    };
  }

  /** The QR on screen, or null when the account is not scanning. */
  get screenQr(): QrView | null {
    return this.status === "qr_scanning" ? this.qr : null;
  }

  /** Broadcasts the status the claim already wrote (`initializing`, or a lost node's `node_lost`). */
  announceClaim(): Promise<void> {
    return this.pipeline.enqueue(
      { kind: "status", ...(this.claimWrote ?? { status: "initializing" }) },
      { written: true },
    );
  }

  /** Creates and starts the engine (the start queue's turn of this session). */
  async launch(): Promise<void> {
    if (this.closed) return;
    if (this.deps.overCapacity?.()) {
      // Placement sends new workspaces to workers with room; this one has none left for this account.
      await this.pipeline.enqueue({
        kind: "status",
        status: "failed",
        reason: "capacity_exhausted",
        message: `Node ${this.fence.node} runs its SESSION_CAPACITY of sessions already`,
      });
      return;
    }
    try {
      const engine = resolveEngine(this.engineName)({
        ...this.deps.engine,
        accountId: this.accountId,
        workspaceId: this.workspaceId,
        sessionId: this.sessionId,
        authStore: this.engineAuthStore(),
        logger: this.deps.logger,
        startTurn: () => this.deps.startTurn(this.accountId),
      });
      this.engine = engine;
      this.unbind = bindEngineEvents(engine, (change) => void this.pipeline.enqueue(change));
      if ((await this.startWithin(engine)) === "hung") {
        // The engine's own watchdog should have fired; this backstop frees the start slot regardless.
        if (!this.closed) {
          await this.pipeline.enqueue({
            kind: "status",
            status: "failed",
            reason: "startup_timeout",
            message: `Engine start did not return within ${this.startLimitMs()} ms`,
          });
        }
        return;
      }
      if (this.closed) await engine.stop();
    } catch (err) {
      if (this.closed) return;
      await this.pipeline.enqueue({
        kind: "status",
        status: "failed",
        reason: failureReasonOf(err),
        message: (err as Error).message,
      });
    }
  }

  /** Stops the engine; `persist: false` (shutdown, fencing) writes and broadcasts nothing; `force`
   * kills the engine at once (the node has no fence for it any more). */
  async stop({ persist = true, force = false } = {}): Promise<AccountStatus> {
    await this.halt(force);
    if (persist) await this.pipeline.enqueue({ kind: "status", status: "stopped" }, { force: true });
    else await this.pipeline.settled();
    return this.status;
  }

  /** Unlinks the device: auth state deleted, account `logged_out`. */
  async logout(): Promise<AccountStatus> {
    if (this.engine) await this.engine.logout();
    else {
      // Still waiting for a start slot: nothing runs, so unlinking is deleting the saved state.
      this.close();
      await this.deps.authStore.delete(this.sessionId, this.fence);
      await this.pipeline.enqueue({ kind: "status", status: "logged_out" }, { force: true });
    }
    await this.pipeline.settled();
    return this.status;
  }

  /**
   * Runs `op` against the engine, then waits until the changes it caused are applied, so the caller
   * sees the resulting status. InvalidStateError when the engine has not started (yet).
   */
  async drive<T>(op: (engine: Engine) => Promise<T>): Promise<{ result: T; status: AccountStatus }> {
    if (!this.engine) throw noEngineError(this.accountId, this.status);
    const result = await op(this.engine);
    await this.pipeline.settled();
    return { result, status: this.status };
  }

  /** Sends through the engine. Unlike drive(), the answer does not wait for the session's other
   * changes (a busy chat's incoming messages and their media) to be applied first. */
  async send(message: OutboundMessage): Promise<{ id: string }> {
    if (!this.engine) throw noEngineError(this.accountId, this.status);
    return this.engine.send(message);
  }

  /** Marks the session closed; its pipeline may still apply a forced change. */
  private close(): void {
    this.ended = true;
    this.deps.onClose(this);
  }

  /** Kills the engine of a stop still under way (a graceful close can outlast the lease: this node
   * lost the workspace meanwhile, and the next owner may start its own browser). */
  async kill(): Promise<void> {
    await this.halt(true);
  }

  /** Settles once the engine's latest stop has ended (at once when none was asked for). Whatever
   * closed the session (a stop, an engine that ended by itself, a fence-out), the next session of the
   * account waits for it: two engines must never share one profile. */
  engineDown(): Promise<void> {
    return this.engineStop;
  }

  /** Closes the session and stops its engine (or, forced, the engine of a stop under way). */
  private async halt(force = false): Promise<void> {
    this.close();
    this.unbind?.();
    this.unbind = null;
    const engine = this.engine ?? (force ? this.stoppingEngine : null);
    this.engine = null;
    if (!engine) return;
    this.stoppingEngine = engine;
    const stopping = engine.stop({ force });
    this.engineStop = stopping.then(
      () => undefined,
      () => undefined,
    );
    try {
      await stopping;
    } catch (err) {
      this.deps.logger.warn(`Stopping ${this.accountId} failed`, err);
    } finally {
      if (this.stoppingEngine === engine) this.stoppingEngine = null;
    }
  }

  private async fenceOut(): Promise<void> {
    this.deps.logger.warn(
      `Session ${this.accountId}: fenced out (epoch ${this.fence.epoch} on ${this.fence.node}); stopping`,
    );
    await this.halt(true);
  }

  /**
   * The AuthStore of the engine: every load, save and delete carries this session's fence, so once a
   * newer owner has restored the state, nothing this engine writes lands (the session is fenced out).
   * An account never owned before has no saved state (only its own engines save under its unique
   * sessionId, and none ran): its engine's loads need no database read until it saves something.
   */
  private engineAuthStore(): AuthStore {
    const store = this.deps.authStore;
    const fence = this.fence;
    const fenced = <T>(write: Promise<T>): Promise<T> =>
      write.catch((err: unknown) => {
        if (err instanceof NotOwnerError && !this.ended) void this.fenceOut();
        throw err;
      });
    let nothingSaved = this.neverOwned;
    return {
      load: (sessionId) => (nothingSaved ? Promise.resolve(null) : fenced(store.load(sessionId, fence))),
      has: (sessionId) => (nothingSaved ? Promise.resolve(false) : store.has(sessionId)),
      save: (sessionId, blob) => {
        nothingSaved = false;
        return fenced(store.save(sessionId, blob, fence));
      },
      delete: (sessionId) => fenced(store.delete(sessionId, fence)),
    };
  }

  private startLimitMs(): number {
    return (this.deps.engine.startupTimeoutMs ?? 60000) + START_GRACE_MS;
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
}

/** An engine start that throws may say why in `data.reason`; otherwise it is an engine error. */
function failureReasonOf(err: unknown): FailureReason {
  const reason = (err as { data?: { reason?: unknown } } | null)?.data?.reason;
  return isFailureReason(reason) ? reason : "engine_error";
}
