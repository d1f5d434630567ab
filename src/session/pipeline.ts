// The pipeline of one session: every change of the account is applied after the previous one, so
// its events leave this node in order. Status changes that arrive together are one fenced write
// (status-run.ts). Their events are in the event log before that write and broadcast after it, so no
// crash can leave a state change without its event, and a read after an event shows the change.
// The QR screen is the exception: it is shown at once while the fence holds in memory (see applyRun).
import { randomUUID } from "node:crypto";
import type { AccountStatusEvent, QrView } from "../accounts/types.ts";
import type { EngineOptions, IncomingMessage } from "../engines/base.ts";
import { incomingEventOf, type IncomingMessageEvent } from "../messages/incoming.ts";
import type { IncomingMediaMeta } from "../store/incoming-media.ts";
import type { AccountStatus, FailureReason } from "../lifecycle/states.ts";
import type { AckStatus } from "../messages/types.ts";
import { qrViewOf } from "../qr/qr-image.ts";
import type { AccountsRepo, StatusPatch } from "../store/accounts-repo.ts";
import { isDatabaseUnavailable } from "../store/mongo.ts";
import type { SessionChange } from "./engine-events.ts";
import { carriesFence, type Fence, type Ownership } from "../placement/fence.ts";
import { publishVia, type Publisher } from "./event-publisher.ts";
import { foldStatusRun, type QueuedChange, type StatusRun, type StatusStep } from "./status-run.ts";

/** A run that failed waits this long before its next attempt, doubled each time up to the max. */
const OUTAGE_RETRY_MS = 250;
const OUTAGE_RETRY_MAX_MS = 2000;
/** How long a closed session's messages wait for the database, all together: its stop waits for them.
 * Past it, what is still queued (and not forced) is dropped at once. */
const CLOSED_BUDGET_MS = 15_000;

/** What attempts at a run have done: its events logged so far (their payloads, in order), its QR
 * screen shown. */
interface RunProgress {
  recorded?: (unknown | null)[];
  broadcast?: boolean;
  /** Per step, the key of its event in the log: the same for every attempt (EventsRepo.append). */
  keys?: string[];
}

/** What attempts at relaying a change have done: a receipt's record, and its answer; the key of its
 * event in the log. */
interface RelayProgress {
  ack?: unknown;
  key?: string;
}

/** The session a pipeline serves: what it reads, and the fields it keeps current. */
export interface PipelineSession {
  readonly accountId: string;
  readonly workspaceId: string;
  readonly sessionId: string;
  readonly fence: Fence;
  /** Stopping, finished or fenced out: engine events are no longer applied. */
  readonly closed: boolean;
  status: AccountStatus;
  /** Why the session failed, while its status is `failed`. */
  reason: FailureReason | null;
  phoneNumber: string | null;
  qr: QrView | null;
}

/** What the pipelines of a node share. */
export interface PipelineDeps {
  repo: AccountsRepo;
  /** The ownership in force now (placement may replace it after the runtime was built). */
  ownership: () => Ownership;
  /** Logs (`record`) and broadcasts (`send`) account events (event-publisher.ts). */
  publisher: Publisher;
  logger: NonNullable<EngineOptions["logger"]>;
  /** Records a receipt of a sent message (its status record): "advanced" when it is news, "same" when a
   * receipt of that status came before, "behind" when the message already had a later status (then it
   * is not published). @default not recorded */
  recordAck?: (ack: {
    workspaceId: string;
    accountId: string;
    messageId: string;
    status: AckStatus;
    at: Date;
  }) => Promise<unknown>;
  /** Keeps the bytes of a received media message (GET …/messages/:messageId/media). @default not kept */
  keepIncomingMedia?: (meta: IncomingMediaMeta, data: Buffer) => Promise<void>;
  /** A session announced `connected`. */
  onConnected?: (accountId: string) => void;
  /** CLOSED_BUDGET_MS (tests). */
  closedBudgetMs?: number;
}

/** How the pipeline ends its session. */
export interface SessionEnds {
  /** The engine ended by itself (failed, logged out): close the session and stop its engine. */
  release: () => Promise<void>;
  /** A fenced write matched nothing: another owner took the account. Stop, write nothing. */
  fenceOut: () => Promise<void>;
}

export class SessionPipeline {
  /** Changes not applied yet, in the order they happened. */
  private readonly backlog: QueuedChange[] = [];
  /** A drain of the backlog is running. */
  private draining = false;
  /** Settles once the backlog is empty. */
  private chain: Promise<void> = Promise.resolve();
  /** When a wait for the database first found the session closed (CLOSED_BUDGET_MS counts from it). */
  private closedAt?: number;
  /** The session closed and its budget ran out in an outage: nothing more of it is relayed. */
  private abandoned = false;

  constructor(
    private readonly s: PipelineSession,
    private readonly deps: PipelineDeps,
    private readonly ends: SessionEnds,
  ) {}

  /** Settles once every change queued so far is applied. */
  settled(): Promise<void> {
    return this.chain;
  }

  /**
   * Queues a change of the account; resolves once it (and whatever queued after it) is applied.
   * Changes that arrive together are applied together: consecutive status changes are one write.
   */
  enqueue(change: SessionChange, { force = false, written = false } = {}): Promise<void> {
    this.backlog.push({ change, force, written, at: new Date() });
    if (!this.draining) {
      this.draining = true;
      this.chain = this.drain();
    }
    return this.chain;
  }

  private async drain(): Promise<void> {
    const { s, backlog } = this;
    // One turn for the engine to report what it reports at once (a restore: authenticated, ready).
    await Promise.resolve();
    for (;;) {
      // A closed session applies only forced changes (the `stopped` of a stop), and still relays what
      // its engine received while the fence holds (WhatsApp does not deliver a message twice).
      while (
        backlog.length > 0 &&
        s.closed &&
        !backlog[0]!.force &&
        (this.abandoned || !this.stillRelayed(backlog[0]!.change))
      )
        backlog.shift();
      const head = backlog[0];
      if (!head) {
        this.draining = false;
        return;
      }
      if (head.change.kind !== "status") {
        backlog.shift();
        const change = head.change;
        const done: RelayProgress = {};
        await this.whileUnavailable(
          change,
          () => this.relay(change, done),
          // A closed session's stop waits for this: one bounded wait for all of it. An open one's
          // messages wait through a hand-off too (its sessions run on while their changes are flushed).
          () =>
            s.closed
              ? this.withinClosedBudget() && this.stillRelayed(change)
              : this.fenceHolds() || this.stillRelayed(change),
        ).catch((err) => {
          this.reportFailure(change, err);
          if (s.closed && isDatabaseUnavailable(err)) this.abandoned = true;
        });
        continue;
      }
      let applicable = 0;
      while (applicable < backlog.length && (!s.closed || backlog[applicable]!.force)) applicable += 1;
      let run: StatusRun;
      try {
        run = foldStatusRun(s.status, backlog.slice(0, applicable));
      } catch (err) {
        backlog.shift();
        this.reportFailure(head.change, err);
        continue;
      }
      const forced = backlog.slice(0, run.consumed).some((queued) => queued.force);
      backlog.splice(0, run.consumed);
      await this.applyRunRetrying(run, head.change, forced);
    }
  }

  /** Applies a run, waiting for the database while it is unavailable (whileUnavailable); any other
   * failure drops it. */
  private async applyRunRetrying(run: StatusRun, head: SessionChange, forced: boolean): Promise<void> {
    const { s } = this;
    const done: RunProgress = {};
    const change = run.steps.at(-1)?.change ?? head;
    try {
      await this.whileUnavailable(
        change,
        () => this.applyRun(run, done, forced),
        () => !s.closed && this.fenceHolds(),
      );
    } catch (err) {
      this.reportFailure(change, err);
      // An engine that ended must not keep running because its end could not be recorded.
      if (run.terminal && !s.closed) await this.ends.release();
    }
  }

  /**
   * Runs `attempt`; while the database is unavailable and `keepTrying` (the session open under its
   * fence; a closed one's message while it is still relayed), again (OUTAGE_RETRY_MS, doubling up to
   * OUTAGE_RETRY_MAX_MS), the changes after it waiting in order: the account's status and events catch
   * up with its engine once the database is back, and a message received meanwhile is not lost
   * (WhatsApp does not deliver it again). Attempts keep what they did in their progress, so nothing is
   * done twice. Rejects with any other failure, or the outage's once `keepTrying` says no: asked again
   * after each wait, since the session may have closed or lost its fence meanwhile.
   */
  private async whileUnavailable(
    change: SessionChange,
    attempt: () => Promise<void>,
    keepTrying: () => boolean,
  ): Promise<void> {
    for (let n = 0; ; n++) {
      try {
        return await attempt();
      } catch (err) {
        if (!isDatabaseUnavailable(err) || !keepTrying()) throw err;
        if (n === 0)
          this.deps.logger.warn(
            `Session ${this.s.accountId}: change ${describeChange(change)} waits for the database ` +
              `(${(err as Error).message}); trying again every ${OUTAGE_RETRY_MAX_MS} ms at most`,
          );
        await new Promise((r) => setTimeout(r, Math.min(OUTAGE_RETRY_MS * 2 ** n, OUTAGE_RETRY_MAX_MS)));
        if (!keepTrying()) throw err;
      }
    }
  }

  /** Whether a closed session may still wait for the database (CLOSED_BUDGET_MS from the first wait). */
  private withinClosedBudget(): boolean {
    this.closedAt ??= Date.now();
    return Date.now() - this.closedAt < (this.deps.closedBudgetMs ?? CLOSED_BUDGET_MS);
  }

  /** A received message or receipt of a closed session, relayed all the same while the fence holds,
   * also while the workspace is being handed off (its record is still this node's until then). */
  private stillRelayed(change: SessionChange): boolean {
    if (change.kind !== "message" && change.kind !== "ack") return false;
    const { s } = this;
    const ownership = this.deps.ownership();
    const now = ownership.current(s.workspaceId) ?? ownership.handingOff?.(s.workspaceId) ?? null;
    return now !== null && carriesFence(now, s.fence);
  }

  /** This node still holds the workspace under the session's epoch (lease current, placement agrees). */
  private fenceHolds(): boolean {
    const { s } = this;
    const now = this.deps.ownership().current(s.workspaceId);
    return now !== null && carriesFence(now, s.fence);
  }

  private reportFailure(change: SessionChange, err: unknown): void {
    this.deps.logger.error(`Session ${this.s.accountId}: change ${describeChange(change)} failed`, err);
  }

  /** Events that change no status: relayed only. */
  private async relay(
    change: Exclude<SessionChange, { kind: "status" }>,
    done: RelayProgress = {},
  ): Promise<void> {
    const { s } = this;
    if (change.kind === "pairing_code") {
      const { code, phoneNumber } = change;
      await this.publishOnce(done, "account.pairing_code", { ...idsOf(s), code, phoneNumber });
    } else if (change.kind === "ack") {
      const { id: messageId, status, at } = change.ack;
      // Recorded first (GET …/messages/:id), then published even if the record failed: a receipt is
      // worth more to a listener than to the status record. One that is no news is not published: one
      // behind what the message already had (`delivered` after `read`: receipts can arrive out of
      // order), or the same as one before (WhatsApp repeats some): listeners see each of a message's
      // statuses once, moving forward only, as GET does.
      // Recorded by an attempt before: its answer stands (a second record would answer "same").
      const recorded = (done.ack ??= await this.deps
        .recordAck?.({ ...idsOf(s), messageId, status, at: new Date(at) })
        .catch((err) => this.reportFailure(change, err)));
      if (recorded === "behind" || recorded === "same") return;
      await this.publishOnce(done, "account.message_ack", {
        ...idsOf(s),
        messageId,
        status,
        at: new Date(at).toISOString(),
      });
    } else {
      const event = await this.incomingEvent(change.message);
      await this.publishOnce(done, "account.message", { ...idsOf(s), ...event });
    }
  }

  /** Logs, then broadcasts, the event of a change under the change's key: an attempt after one that
   * failed not knowing whether its event landed (its reply lost, then the database away) finds it. */
  private async publishOnce(done: RelayProgress, event: string, payload: unknown): Promise<void> {
    await publishVia(this.deps.publisher)(event, payload, (done.key ??= randomUUID()));
  }

  /** The event of a received message, its media bytes kept first: a listener may fetch them as soon
   * as it sees the event. Bytes that could not be kept leave the event without a `mediaUrl`. */
  private async incomingEvent(m: IncomingMessage): Promise<IncomingMessageEvent> {
    const { s } = this;
    const keep = this.deps.keepIncomingMedia;
    let kept = false;
    if (m.media && keep) {
      const meta = {
        ...idsOf(s),
        messageId: m.id,
        mimetype: m.media.mimetype,
        filename: m.media.filename ?? null,
      };
      kept = await keep(meta, m.media.data).then(
        () => true,
        (err: unknown) => {
          this.reportFailure({ kind: "message", message: m }, err);
          return false;
        },
      );
    }
    return incomingEventOf(s.accountId, m, kept);
  }

  /**
   * The run's events into the log, then one fenced write for the run, then the events broadcast in
   * order: a crash between the log and the write leaves an event whose status was not written (its
   * payload names the node and epoch that saw it), never a written status without its event.
   * Except the QR screen (`qr_scanning`, QR codes): a person is waiting for it and the QR lives in this
   * session, so it is shown at once while this node's fence holds in memory (lease current, placement
   * agrees), and the status written after; a write the database refuses then fences the session out
   * like any other. QR refreshes are never written.
   * `forced`: a change applied even after the session closed (a stop's `stopped`, a logout's
   * `logged_out`), which the database's fence alone decides.
   */
  private async applyRun(run: StatusRun, done: RunProgress = {}, forced = false): Promise<void> {
    if (run.steps.length === 0) return;
    const { s } = this;
    const holds = this.fenceHolds();
    if (!holds && run.steps.every((step) => step.refresh)) {
      // QR refreshes are written nowhere: with the fence gone from memory, they are not shown either.
      this.deps.logger.debug(`Session ${s.accountId}: QR not shown, epoch ${s.fence.epoch} is not current`);
      return;
    }
    if (!holds && s.closed && !forced) {
      // What the engine reported before the node lost the workspace (asking for the fence just now may
      // have found the lease lapsed and closed the session): its write could still land while no next
      // owner has written, and its event go out under an epoch this node has given up.
      this.deps.logger.debug(`Session ${s.accountId}: closed and fenced out, its last changes dropped`);
      return;
    }
    // Rendered on the next microtask, so after the first write below has been sent; a payload that
    // cannot be encoded rejects `rendering`.
    const rendering = Promise.resolve().then(() =>
      run.steps.map((step) => (step.change.qr ? qrViewOf(step.change.qr) : null)),
    );
    if (run.showsQr && holds) {
      if (!done.broadcast) {
        const recorded = await this.recordRun(run, done);
        if (s.closed || !this.fenceHolds()) {
          // Stopped, or the fence gone, while it was logged: no QR of this session is to be scanned
          // any more, nor its status written (the stop's `stopped` follows).
          await rendering.catch(() => undefined);
          return;
        }
        await this.broadcastRun(run, recorded, await rendering);
        done.broadcast = true;
      }
      if (
        run.needsWrite &&
        !(await this.deps.repo.writeStatus(s.accountId, s.fence, run.patch as StatusPatch))
      )
        await this.ends.fenceOut();
      return;
    }
    // With the fence gone from memory (a forced run; a session its loss has not closed yet), the write
    // is likely refused: nothing is logged before it, and if it lands (no next owner yet) after it.
    const recording = holds ? this.recordRun(run, done) : Promise.resolve(null);
    const [recorded, rendered] = await Promise.allSettled([recording, rendering]);
    if (recorded.status === "rejected") throw recorded.reason;
    const written = run.needsWrite
      ? await this.deps.repo.writeStatus(s.accountId, s.fence, run.patch as StatusPatch)
      : true;
    if (!written) {
      await this.ends.fenceOut();
      return;
    }
    if (rendered.status === "rejected") throw rendered.reason;
    await this.broadcastRun(run, recorded.value ?? (await this.recordRun(run, done)), rendered.value);
    if (run.terminal && !s.closed) {
      // The engine ended by itself (failed, logged out): release it.
      await this.ends.release();
    }
  }

  /** The run's status events, written to the event log in order: the payloads to broadcast. Kept in
   * `done`, so an attempt that follows a failed one logs them once. */
  private async recordRun(run: StatusRun, done: RunProgress): Promise<(unknown | null)[]> {
    const recorded = (done.recorded ??= []);
    const keys = (done.keys ??= run.steps.map(() => randomUUID()));
    let phoneNumber = this.s.phoneNumber;
    for (const [i, step] of run.steps.entries()) {
      if (step.patch.phoneNumber !== undefined) phoneNumber = step.patch.phoneNumber;
      if (i < recorded.length) continue; // logged by an attempt before
      recorded.push(
        step.refresh
          ? null
          : await this.deps.publisher.record("account.status", this.eventOf(step, phoneNumber), keys[i]),
      );
    }
    return recorded;
  }

  private async broadcastRun(
    run: StatusRun,
    recorded: (unknown | null)[],
    qrs: (QrView | null)[],
  ): Promise<void> {
    const { s } = this;
    for (const [i, step] of run.steps.entries()) {
      const qr = qrs[i] ?? null;
      s.qr = qr;
      if (!step.refresh) {
        this.adopt(step);
        await this.deps.publisher.send("account.status", recorded[i]);
      }
      if (qr) await publishVia(this.deps.publisher)("account.qr", { ...idsOf(s), ...qr });
    }
  }

  /** The session takes on the step's status (its fields as the runtime reports them). */
  private adopt(step: StatusStep): void {
    const { s } = this;
    const { change, previous } = step;
    s.status = change.status;
    s.reason = change.status === "failed" ? (change.reason ?? null) : null;
    if (change.status === "connected") this.deps.onConnected?.(s.accountId);
    if (step.patch.phoneNumber !== undefined) s.phoneNumber = step.patch.phoneNumber;
    if (change.status === "failed")
      this.deps.logger.warn(`Session ${s.accountId}: failed/${change.reason} (${change.message ?? ""})`);
    else this.deps.logger.debug(`Session ${s.accountId}: ${previous} → ${change.status}`);
  }

  /** The `account.status` event of a step, with the phone number the account has after it. */
  private eventOf(step: StatusStep, phoneNumber: string | null): AccountStatusEvent {
    const { s } = this;
    const { change, previous } = step;
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
    if (phoneNumber) event.phoneNumber = phoneNumber;
    return event;
  }
}

function idsOf(s: PipelineSession) {
  return { accountId: s.accountId, workspaceId: s.workspaceId };
}

function describeChange(change: SessionChange): string {
  return change.kind === "status" ? `→ ${change.status}` : change.kind;
}
