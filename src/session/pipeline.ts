// The per-account pipeline of the session runtime: every change of an account is applied after the
// previous one, so the events of one account leave this node in order. Status changes that arrive
// together are one fenced write (src/session/status-run.ts); each is persisted before it is broadcast,
// except the QR screen, shown at once while the fence holds in memory (see applyRun).
import { qrViewOf } from "../qr/qr-image.ts";
import type { AccountStatusEvent, QrView } from "../accounts/types.ts";
import type { Engine, EngineOptions } from "../engines/base.ts";
import type { AccountStatus } from "../lifecycle/states.ts";
import type { AccountsRepo, StatusPatch } from "../store/accounts-repo.ts";
import type { SessionChange } from "./engine-events.ts";
import { carriesFence, type Fence, type Ownership } from "./ownership.ts";
import { foldStatusRun, type QueuedChange, type StatusRun } from "./status-run.ts";

/** A session of this node, from its claim until it is closed. */
export interface LiveSession {
  readonly accountId: string;
  readonly workspaceId: string;
  readonly sessionId: string;
  readonly engineName: string;
  readonly fence: Fence;
  status: AccountStatus;
  phoneNumber: string | null;
  qr: QrView | null;
  engine: Engine | null;
  unbind: (() => void) | null;
  /** Changes not applied yet, in the order they happened. */
  backlog: QueuedChange[];
  /** A drain of the backlog is running. */
  draining: boolean;
  /** The account's pipeline: settles once the backlog is empty. */
  chain: Promise<void>;
  /** Stopping, finished or fenced out: engine events are no longer applied. */
  closed: boolean;
  /** Never owned before this claim: no engine ever ran it, so it has no saved auth state yet. */
  neverOwned: boolean;
}

/** What the pipeline needs from the runtime that owns the sessions. */
export interface PipelineDeps {
  repo: AccountsRepo;
  /** The ownership in force now (placement may replace it after the runtime was built). */
  ownership: () => Ownership;
  broadcast: (event: string, payload: unknown) => unknown;
  logger: NonNullable<EngineOptions["logger"]>;
  /** The engine ended by itself (failed, logged out): close the session and stop its engine. */
  release: (s: LiveSession) => Promise<void>;
  /** A fenced write matched nothing: another owner took the account. Stop, write nothing. */
  fenceOut: (s: LiveSession) => Promise<void>;
}

export class SessionPipeline {
  constructor(private readonly deps: PipelineDeps) {}

  /**
   * Queues a change of the account; resolves once it (and whatever queued after it) is applied.
   * Changes that arrive together are applied together: consecutive status changes are one write.
   */
  enqueue(s: LiveSession, change: SessionChange, { force = false, written = false } = {}): Promise<void> {
    s.backlog.push({ change, force, written, at: new Date() });
    if (!s.draining) {
      s.draining = true;
      s.chain = this.drain(s);
    }
    return s.chain;
  }

  private async drain(s: LiveSession): Promise<void> {
    // One turn for the engine to report what it reports at once (a restore: authenticated, ready).
    await Promise.resolve();
    for (;;) {
      // A closed session applies only forced changes (the `stopped` of a stop).
      while (s.backlog.length > 0 && s.closed && !s.backlog[0]!.force) s.backlog.shift();
      const head = s.backlog[0];
      if (!head) {
        s.draining = false;
        return;
      }
      if (head.change.kind !== "status") {
        s.backlog.shift();
        await this.relay(s, head.change).catch((err) => this.reportFailure(s, head.change, err));
        continue;
      }
      let applicable = 0;
      while (applicable < s.backlog.length && (!s.closed || s.backlog[applicable]!.force)) applicable += 1;
      let run: StatusRun;
      try {
        run = foldStatusRun(s.status, s.backlog.slice(0, applicable));
      } catch (err) {
        s.backlog.shift();
        this.reportFailure(s, head.change, err);
        continue;
      }
      s.backlog.splice(0, run.consumed);
      try {
        await this.applyRun(s, run);
      } catch (err) {
        this.reportFailure(s, run.steps.at(-1)?.change ?? head.change, err);
        // An engine that ended must not keep running because its end could not be recorded.
        if (run.terminal && !s.closed) {
          await this.deps.release(s);
        }
      }
    }
  }

  /** This node still holds the workspace under the session's epoch (lease current, placement agrees). */
  private fenceHolds(s: LiveSession): boolean {
    const now = this.deps.ownership().current(s.workspaceId);
    return now !== null && carriesFence(now, s.fence);
  }

  private reportFailure(s: LiveSession, change: SessionChange, err: unknown): void {
    this.deps.logger.error(`Session ${s.accountId}: change ${describeChange(change)} failed`, err);
  }

  /** Events that change no status: relayed only. */
  private async relay(s: LiveSession, change: Exclude<SessionChange, { kind: "status" }>): Promise<void> {
    if (change.kind === "pairing_code") {
      const { code, phoneNumber } = change;
      await this.deps.broadcast("account.pairing_code", { ...idsOf(s), code, phoneNumber });
    } else {
      await this.deps.broadcast("account.message", { ...idsOf(s), ...change.message });
    }
  }

  /**
   * One fenced write for the run, then each of its events in order: persisted before broadcast, so a
   * read after an event shows it. Except the QR screen (`qr_scanning`, QR codes): a person is waiting
   * for it and the QR lives in this runtime, so it is shown at once while this node's fence holds in
   * memory (lease current, placement agrees), and the status written after; a write the database
   * refuses then fences the session out like any other. QR refreshes are never written.
   */
  private async applyRun(s: LiveSession, run: StatusRun): Promise<void> {
    if (run.steps.length === 0) return;
    const holds = this.fenceHolds(s);
    if (!holds && run.steps.every((step) => step.refresh)) {
      // QR refreshes are written nowhere: with the fence gone from memory, they are not shown either.
      this.deps.logger.debug(`Session ${s.accountId}: QR not shown, epoch ${s.fence.epoch} is not current`);
      return;
    }
    // Rendered on the next microtask (about 1 ms a QR), so after the write below has been sent when
    // there is one; a payload that cannot be encoded rejects `rendering`.
    const rendering = Promise.resolve().then(() =>
      run.steps.map((step) => (step.change.qr ? qrViewOf(step.change.qr) : null)),
    );
    if (run.showsQr && holds) {
      await this.broadcastRun(s, run, await rendering);
      if (
        run.needsWrite &&
        !(await this.deps.repo.writeStatus(s.accountId, s.fence, run.patch as StatusPatch))
      )
        await this.deps.fenceOut(s);
      return;
    }
    // The images are rendered while the write (if the claim has not made it already) is in flight.
    const [written, rendered] = await Promise.allSettled([
      run.needsWrite ? this.deps.repo.writeStatus(s.accountId, s.fence, run.patch as StatusPatch) : true,
      rendering,
    ]);
    if (written.status === "rejected") throw written.reason;
    if (!written.value) {
      await this.deps.fenceOut(s);
      return;
    }
    if (rendered.status === "rejected") throw rendered.reason;
    await this.broadcastRun(s, run, rendered.value);
    if (run.terminal && !s.closed) {
      // The engine ended by itself (failed, logged out): release it.
      await this.deps.release(s);
    }
  }

  private async broadcastRun(s: LiveSession, run: StatusRun, qrs: (QrView | null)[]): Promise<void> {
    for (const [i, step] of run.steps.entries()) {
      const qr = qrs[i] ?? null;
      s.qr = qr;
      if (!step.refresh) await this.announce(s, step);
      if (qr) await this.deps.broadcast("account.qr", { ...idsOf(s), ...qr });
    }
  }

  private async announce(s: LiveSession, step: StatusRun["steps"][number]): Promise<void> {
    const { change, previous } = step;
    s.status = change.status;
    if (step.patch.phoneNumber !== undefined) s.phoneNumber = step.patch.phoneNumber;
    const event: AccountStatusEvent = {
      ...idsOf(s),
      sessionId: s.sessionId,
      status: change.status,
      previousStatus: previous,
      node: s.fence.node,
      epoch: s.fence.epoch,
      at: step.at.toISOString(),
    };
    if (change.reason) event.reason = change.reason;
    if (change.message) event.message = change.message;
    if (s.phoneNumber) event.phoneNumber = s.phoneNumber;
    if (change.status === "failed")
      this.deps.logger.warn(`Session ${s.accountId}: failed/${change.reason} (${change.message ?? ""})`);
    else this.deps.logger.debug(`Session ${s.accountId}: ${previous} → ${change.status}`);
    await this.deps.broadcast("account.status", event);
  }
}

function idsOf(s: LiveSession) {
  return { accountId: s.accountId, workspaceId: s.workspaceId };
}

function describeChange(change: SessionChange): string {
  return change.kind === "status" ? `→ ${change.status}` : change.kind;
}
