// The delivery loop of one node. It delivers the queues of the endpoints whose lease it holds, one
// (endpoint, account) queue at a time in seq order: the next row of an account is only sent after the
// previous one is delivered or dead. Different queues proceed in parallel up to `concurrency`.
//
// It learns of work three ways: from its own recording (one node records a workspace's events,
// src/webhooks/recorder-slots.ts, and usually also holds its endpoints: it took them when it first
// recorded for them); from the recorder's word on the bus when another node records the workspace
// (`recordedElsewhere`: after the workspace's slot moved, the endpoint stays with its holder while it
// is busy); and from a periodic scan of the pending rows (`scanMs`), which catches what was recorded
// while this node was down, not holding the lease, or deaf to the bus.
// Between scans it touches the database by `_id` only: the row at a queue's cursor, the lease. A row
// this node inserted (or read back pending while recording) while holding the endpoint is not read
// again: nobody else delivers it, so it is pending until this node delivers it. A delivered row's mark
// is written in the background (the queue moves on as soon as the receiver accepted it); until the
// mark lands (a failed write is tried again for as long as this node holds the endpoint) the row
// counts as delivered here.
import type { Logger } from "moleculer";
import type { BackoffOptions } from "./backoff.ts";
import { applyOutcome, type OutcomeContext } from "./attempt-outcome.ts";
import type { EndpointsRepo } from "../store/webhook-endpoints-repo.ts";
import type { LeaseRepo } from "../store/webhook-leases-repo.ts";
import {
  queueKey,
  slotId,
  type OutboxRepo,
  type QueueHead,
  type RecordResult,
} from "../store/webhook-outbox-repo.ts";
import type { AddressPolicy } from "../net/address-guard.ts";
import { attemptDelivery } from "./http-delivery.ts";
import { DeliveredMarks } from "./delivered-marks.ts";
import { RememberedRows } from "./remembered-rows.ts";
import { QueueCursors, skipFinished, type Cursor, type QueuePosition } from "./queue-cursors.ts";
import { HeldEndpoints } from "./held-endpoints.ts";
import { AttemptsInFlight } from "./attempts-in-flight.ts";
import { OutboxPruning } from "./outbox-pruning.ts";
import { EndpointSettings } from "./endpoint-settings.ts";
import type { EndpointDoc, OutboxDoc } from "./types.ts";

export interface DeliveryLoopOptions {
  /** How often due queues are looked at. @default 1000 */
  pollMs: number;
  /** Full scan of the pending rows (work recorded while this node did not hear of it, takeover of
   * endpoints whose holder is gone). @default max(5 × pollMs, 2000) */
  scanMs: number;
  /** Lease time-to-live of an endpoint's queues. @default 30000 */
  leaseTtlMs: number;
  /** Timeout of one HTTP attempt. @default 10000 */
  timeoutMs: number;
  /** Attempts before a row is `dead`. @default 10 */
  maxAttempts: number;
  backoff: BackoffOptions;
  /** Attempts in flight on this node. @default 100 */
  concurrency: number;
  /** Attempts in flight on this node for one workspace, so a tenant with slow receivers cannot hold
   * every slot; 0: no per-workspace bound. @default 0 */
  workspaceConcurrency?: number;
  /** Delivered and dead rows are deleted after this long; 0 keeps them. @default 604800000 (7 days) */
  retentionMs: number;
  /** Addresses receivers may have. @default public addresses only */
  policy?: AddressPolicy;
  /** How long a stopping node waits at most for its delivered marks to be written; the rows of those
   * not written stay pending, and the endpoint's next holder sends them again. @default 5000 */
  stopMarksWaitMs?: number;
  /** How long a stopping node lets its attempts in flight finish before it cuts them (a cut attempt
   * stays pending, and the endpoint's next holder sends it again, though its receiver may have taken
   * it). @default the smaller of `timeoutMs` and 3000 */
  stopAttemptsWaitMs?: number;
}

interface Repos {
  outbox: OutboxRepo;
  leases: LeaseRepo;
  endpoints: EndpointsRepo;
}

/** Delivered marks waiting at most; past it no new attempt starts until some land. A node that dies
 * with marks waiting leaves those rows pending: the next holder sends them again (at least once). At
 * 1,000 a burst of 2,000 deliveries waited on the marks in the webhooks bench. */
const MAX_UNMARKED = 4000;

export class DeliveryLoop {
  private readonly cursors = new QueueCursors((key) => this.remembered.forgetQueue(key));
  /** Endpoints with work this node does not hold: it tries to claim them. */
  private readonly wanted = new Set<string>();
  /** Queues to take back to a row made pending again, once no attempt of theirs is under way
   * (`several`: more than one row of the queue was; `resentSeqs`: each of them). */
  private readonly rewinds = new Map<
    string,
    QueuePosition & { several: boolean; resentSeqs: (number | null)[] }
  >();
  private readonly inFlight = new AttemptsInFlight();
  /** Endpoint documents, read again after a scan period (a change made on another node shows within
   * it); an endpoint whose settings cannot be read waits, backing off. */
  private readonly endpoints: EndpointSettings;
  private readonly pruning: OutboxPruning;
  /** Pending rows this node inserted (or read back) while holding their endpoint: not read again. */
  private readonly remembered = new RememberedRows();
  /** Rows delivered whose `delivered` mark is still to be written. */
  private readonly unmarked: DeliveredMarks;
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  /** The endpoints this node delivers (their leases), released after a lease period without work. */
  private readonly held: HeldEndpoints;
  /** What an attempt's answer writes and moves. */
  private readonly outcomes: OutcomeContext;
  /** Leases are renewed on a timer of their own: a tick slowed by a busy database must not let them
   * lapse (another node would take the endpoint over, and deliver again what this one had not marked). */
  private renewTimer: NodeJS.Timeout | null = null;
  private renewing: Promise<void> | null = null;
  private ticking: Promise<void> | null = null;
  /** The scan's read in progress: it runs beside the ticks, which go on dispatching meanwhile (it
   * reads every pending row, and took seconds on FerretDB in the middle of a burst); the next tick
   * applies what it read (`scanned`), so that only ticks move cursors. */
  private scanning: Promise<void> | null = null;
  private scanned: QueueHead[] | null = null;
  private again = false;
  private stopped = false;
  private lastScan = 0;

  constructor(
    private readonly repos: Repos,
    private readonly opts: DeliveryLoopOptions,
    private readonly logger: Logger,
  ) {
    this.unmarked = new DeliveredMarks(repos.outbox, logger, () => this.kick());
    this.held = new HeldEndpoints(repos.leases, opts.leaseTtlMs);
    this.endpoints = new EndpointSettings(
      (id) => repos.endpoints.findById(id),
      { maxAgeMs: opts.scanMs, minRetryMs: opts.pollMs, backoff: opts.backoff },
      logger,
    );
    this.pruning = new OutboxPruning(repos.outbox, opts.retentionMs, logger);
    const { maxAttempts, backoff } = opts;
    this.outcomes = {
      outbox: repos.outbox,
      remembered: this.remembered,
      unmarked: this.unmarked,
      maxAttempts,
      backoff,
      logger,
    };
  }

  start(): void {
    this.schedule(0);
    this.renewTimer = setInterval(() => void this.renewNow(), Math.max(50, this.opts.leaseTtlMs / 6));
    this.renewTimer.unref();
  }

  /** This node recorded (or found recorded) an event in these queues. */
  notify(results: RecordResult[]): void {
    for (const r of results) {
      if (!this.held.holds(r.endpointId)) {
        this.wanted.add(r.endpointId);
        continue;
      }
      // A row read back pending (another node inserted it) is as good as one this node inserted.
      if (r.doc && (r.inserted || r.doc.status === "pending"))
        this.remembered.inserted(r.doc, this.unmarked.has(r.doc._id));
      this.held.busy(r.endpointId);
      this.cursors.heardOf(r);
    }
    this.kick();
  }

  /** Rows another node recorded (it said so on the bus): the queues of endpoints this node holds are
   * looked at now rather than at the next scan; the others are not this node's to deliver. */
  recordedElsewhere(rows: QueuePosition[]): void {
    const held = rows.filter((r) => this.held.holds(r.endpointId));
    for (const r of held) {
      this.held.busy(r.endpointId);
      this.cursors.heardOf(r);
    }
    if (held.length) this.kick();
  }

  /** Rows made pending again (`webhooks.resend`): the queues of endpoints it holds go back to them
   * (after an attempt under way in the queue: its outcome moves the cursor on); the others are claimed
   * like endpoints with work. */
  resent(rows: QueuePosition[]): void {
    for (const r of rows) {
      if (!this.held.holds(r.endpointId)) this.wanted.add(r.endpointId);
      else {
        // Rows of one queue resent before the next tick: it goes back to the first, and walks from
        // there by reads (the others are among the rows it reads).
        const key = queueKey(r.endpointId, r.accountId);
        const earlier = this.rewinds.get(key);
        const seq = !earlier
          ? r.seq
          : r.seq === null || earlier.seq === null
            ? null
            : Math.min(r.seq, earlier.seq);
        const resentSeqs = [...(earlier?.resentSeqs ?? []), r.seq];
        this.rewinds.set(key, { ...r, seq, several: earlier !== undefined, resentSeqs });
      }
    }
    this.kick();
  }

  /** Whether this node delivers the endpoint's queues now. */
  holds(endpointId: string): boolean {
    return this.held.holds(endpointId);
  }

  /** Look at the queues now. */
  kick(): void {
    if (this.stopped) return;
    if (this.ticking) this.again = true;
    else this.schedule(0);
  }

  /** Endpoints whose queues this node delivers now. */
  heldEndpoints(): string[] {
    return this.held.ids();
  }

  /** Forget an endpoint's cached settings (changed or removed). */
  forgetEndpoint(endpointId: string): void {
    this.endpoints.forget(endpointId);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.renewTimer) clearInterval(this.renewTimer);
    await this.renewing;
    await this.ticking;
    await this.scanning;
    await this.pruning.settled();
    const attemptsWait = this.opts.stopAttemptsWaitMs ?? Math.min(this.opts.timeoutMs, 3000);
    let waited: NodeJS.Timeout | undefined;
    await Promise.race([
      this.inFlight.settled(),
      new Promise((resolve) => (waited = setTimeout(resolve, attemptsWait))),
    ]);
    clearTimeout(waited);
    this.abort.abort();
    await this.inFlight.settled();
    if (!(await this.unmarked.flushed(this.opts.stopMarksWaitMs ?? 5000)))
      this.logger.warn(
        `webhooks: stopping with ${this.unmarked.size} delivered marks not written: those rows stay pending, the next holder of their endpoint sends them again`,
      );
    this.unmarked.close();
    await this.held.releaseAll();
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.runTick(), ms);
  }

  private runTick(): void {
    this.timer = null;
    this.ticking = this.tick()
      .catch((err) => this.logger.warn(`webhooks: delivery loop: ${(err as Error).message}`))
      .finally(() => {
        this.ticking = null;
        const again = this.again;
        this.again = false;
        this.schedule(again ? 0 : this.opts.pollMs);
      });
  }

  private async tick(): Promise<void> {
    await this.renewNow();
    this.pruning.startIfDue();
    this.scanIfDue();
    const scanned = this.scanned;
    this.scanned = null;
    if (scanned) await this.applyScan(scanned);
    const failed: string[] = [];
    for (const endpointId of this.wanted) {
      this.wanted.delete(endpointId);
      if (this.stopped) return;
      if (!this.held.mayClaim(endpointId)) continue;
      // A claim that failed midway is tried again next tick (a term it wrote is ours, and stepped past).
      await this.claim(endpointId).catch((err: Error) => {
        this.logger.warn(`webhooks: claiming endpoint ${endpointId} failed: ${err.message}`);
        failed.push(endpointId);
      });
    }
    for (const endpointId of failed) this.wanted.add(endpointId);
    for (const [key, r] of this.rewinds) {
      if (this.inFlight.has(key)) continue;
      this.rewinds.delete(key);
      // A copy remembered from before is stale: the row was dead (say its last attempt's dead write
      // landed with its answer lost), it is pending from attempt 0 now. It is read again.
      this.remembered.resent(r.endpointId, r.accountId, r.resentSeqs);
      if (!this.held.holds(r.endpointId)) continue;
      if (this.cursors.has(key) && r.seq !== null) this.cursors.rewind(key, r.seq, r.several);
      else this.cursors.heardOf({ ...r, seq: null });
    }
    for (const q of this.cursors.takeUnknown()) {
      if (!this.held.holds(q.endpointId)) continue;
      const [head] = await this.repos.outbox.pendingHeads(q.endpointId, q.accountId);
      if (head && !this.cursors.has(queueKey(q.endpointId, q.accountId))) this.cursors.startAt(head);
    }
    await this.dispatchDue();
  }

  /** Starts reading every queue's first pending row, when a scan is due and none is under way. */
  private scanIfDue(): void {
    if (this.scanning || Date.now() - this.lastScan < this.opts.scanMs) return;
    this.lastScan = Date.now();
    this.scanning = this.repos.outbox
      .pendingHeads()
      .then((heads) => void (this.scanned = heads))
      .catch((err) => this.logger.warn(`webhooks: scanning the outbox: ${(err as Error).message}`))
      .finally(() => {
        this.scanning = null;
        this.kick();
      });
  }

  /** What a scan read: cursors for held endpoints, claims for free ones, and release of held
   * endpoints with nothing left. */
  private async applyScan(heads: QueueHead[]): Promise<void> {
    const withWork = new Set(heads.map((h) => h.endpointId));
    for (const endpointId of this.held.ids())
      if (withWork.has(endpointId) || this.inFlight.hasEndpoint(endpointId)) this.held.busy(endpointId);
    for (const endpointId of this.held.idle()) {
      const releasing = this.held.release(endpointId); // no longer held from here on
      this.forget(endpointId);
      await releasing;
    }
    for (const h of heads) {
      if (!this.held.holds(h.endpointId)) {
        this.wanted.add(h.endpointId);
        continue;
      }
      const key = queueKey(h.endpointId, h.accountId);
      const cursor = this.cursors.get(key);
      if (this.stopped) return;
      if (!cursor) this.cursors.startAt(h);
      else if (this.unmarked.has(slotId(h.endpointId, h.accountId, h.seq))) continue;
      else if (!this.inFlight.has(key) && (h.seq < cursor.next || cursor.wakeAt === Infinity)) {
        // A pending row the cursor did not expect (recorded while a notification was missed); not one
        // whose delivered mark is on its way (the cursor would walk every row since back by reads).
        this.cursors.wake(key, h.seq);
      }
    }
  }

  private async claim(endpointId: string): Promise<void> {
    const lease = await this.held.claim(endpointId);
    if (!lease) return;
    this.logger.debug(`webhooks: delivering endpoint ${endpointId} (term ${lease.term})`);
    this.remembered.claimed(endpointId);
    // Whatever a previous holder did is in the outbox: start each queue at its first pending row.
    for (const h of await this.repos.outbox.pendingHeads(endpointId)) this.cursors.startAt(h);
  }

  /** What this node knew of an endpoint's queues (it no longer delivers them). Its delivered marks
   * still to be written stay: the rows were accepted whoever delivers the endpoint next, and this node,
   * should it take the endpoint back, must not send them again. */
  private forget(endpointId: string): void {
    this.held.forget(endpointId);
    this.endpoints.dropped(endpointId);
    this.cursors.dropEndpoint(endpointId);
    this.remembered.dropped(endpointId);
  }

  /** The row at a queue position: remembered, or read; delivered while its mark is being written, or
   * when it was as the read went out (a read made before the mark landed can answer after it did,
   * with the row still pending). */
  private async rowAt(cursor: Cursor): Promise<OutboxDoc | null> {
    const { endpointId, accountId, next: seq } = cursor;
    const unmarkedBefore = this.unmarked.has(slotId(endpointId, accountId, seq));
    const row =
      this.remembered.get(endpointId, accountId, seq) ??
      (await this.repos.outbox.at(endpointId, accountId, seq));
    if (row && (unmarkedBefore || this.unmarked.has(row._id))) return { ...row, status: "delivered" };
    return row;
  }

  /** Renews what is due, once at a time (the timer's and the tick's calls share one run). */
  private renewNow(): Promise<void> {
    this.renewing ??= this.renewLeases()
      .catch((err) => this.logger.warn(`webhooks: renewing leases: ${(err as Error).message}`))
      .finally(() => (this.renewing = null));
    return this.renewing;
  }

  private async renewLeases(): Promise<void> {
    for (const endpointId of await this.held.renew()) {
      this.logger.warn(`webhooks: lost the lease of endpoint ${endpointId}`);
      this.forget(endpointId);
    }
  }

  /** Sends the row at the cursor of every due queue (one per queue), walking past finished rows. The
   * queues that may start an attempt are picked first, then their rows are read side by side. */
  private async dispatchDue(): Promise<void> {
    const picked: { key: string; cursor: Cursor; endpoint: EndpointDoc }[] = [];
    const pickedOf = new Map<string, number>();
    const perWorkspace = this.opts.workspaceConcurrency ?? 0;
    for (const [key, cursor] of this.cursors.entries()) {
      if (this.stopped || this.unmarked.size >= MAX_UNMARKED) return;
      if (this.inFlight.size + picked.length >= this.opts.concurrency) break;
      if (this.inFlight.has(key) || cursor.wakeAt > Date.now()) continue;
      if (!this.leaseCovers(cursor.endpointId)) continue;
      // An endpoint whose settings cannot be read holds back its own queues only.
      const retryAt = this.endpoints.retryAt(cursor.endpointId);
      if (retryAt > Date.now()) {
        cursor.wakeAt = retryAt;
        continue;
      }
      let endpoint: EndpointDoc | null;
      try {
        endpoint = await this.settingsOf(cursor.endpointId);
      } catch (err) {
        cursor.wakeAt = this.endpoints.failed(cursor.endpointId, err as Error);
        continue;
      }
      if (!endpoint) continue;
      if (!endpoint.enabled) {
        cursor.wakeAt = Date.now() + this.opts.scanMs;
        continue;
      }
      // The workspace has its share in flight: other tenants' queues go first; this one stays due.
      const ws = endpoint.workspaceId;
      const taken = this.inFlight.of(ws) + (pickedOf.get(ws) ?? 0);
      if (perWorkspace > 0 && taken >= perWorkspace) continue;
      picked.push({ key, cursor, endpoint });
      pickedOf.set(ws, (pickedOf.get(ws) ?? 0) + 1);
    }
    // Those picked wait behind the rest next time (taking turns: a queue whose attempt just ended is
    // due again at once, and would otherwise take the slot before every queue after it in the walk).
    for (const { key } of picked) this.cursors.toBack(key);
    const heard = picked.map(({ cursor }) => cursor.heard);
    const reads = await Promise.allSettled(picked.map(({ cursor }) => this.pendingAt(cursor)));
    let unread: Error | undefined;
    for (const [i, { key, cursor, endpoint }] of picked.entries()) {
      const read = reads[i];
      if (this.stopped || !this.cursors.has(key) || !this.leaseCovers(cursor.endpointId)) continue;
      if (read.status === "rejected") {
        // The database failed this queue's read: the others go on; it is looked at again next tick.
        unread ??= read.reason as Error;
        cursor.wakeAt = Date.now() + this.opts.pollMs;
        continue;
      }
      const row = read.value;
      if (!row) {
        // Told of a row meanwhile (its notification already asked for another tick): look again.
        if (cursor.heard === heard[i]) this.cursors.park(key, cursor);
        else cursor.wakeAt = 0;
        continue;
      }
      const due = new Date(row.nextAttemptAt).getTime();
      if (due > Date.now()) cursor.wakeAt = due;
      else this.launch(key, row, endpoint, cursor);
    }
    if (unread) this.logger.warn(`webhooks: reading queues' rows: ${unread.message}`);
  }

  /** The endpoint's settings; a removed one's rows (recorded by a node that had not heard of the
   * removal yet: orphans) are deleted, and null answered. */
  private async settingsOf(endpointId: string): Promise<EndpointDoc | null> {
    const endpoint = await this.endpoints.get(endpointId);
    if (!endpoint) {
      await this.repos.outbox.removeEndpoint(endpointId);
      this.forget(endpointId);
    }
    this.endpoints.succeeded(endpointId);
    return endpoint;
  }

  /** Self-fencing: no attempt starts that could outlive this node's lease of the endpoint. */
  private leaseCovers(endpointId: string): boolean {
    return this.held.covers(endpointId, Date.now() + this.opts.timeoutMs);
  }

  /** The first pending row from the cursor on (the cursor moved to it), or null. */
  private async pendingAt(cursor: Cursor): Promise<OutboxDoc | null> {
    skipFinished(cursor);
    let row = await this.rowAt(cursor);
    while (row && row.status !== "pending") {
      cursor.next++;
      skipFinished(cursor);
      row = await this.rowAt(cursor);
    }
    return row;
  }

  private launch(key: string, row: OutboxDoc, endpoint: EndpointDoc, cursor: Cursor): void {
    const run = this.deliver(row, endpoint, cursor).catch((err) => {
      this.logger.warn(`webhooks: delivery of ${row._id} failed: ${(err as Error).message}`);
      cursor.wakeAt = Date.now() + this.opts.pollMs;
    });
    // Counted until it settles; the loop looks at the queues again once it is no longer counted.
    this.inFlight.add(key, endpoint.workspaceId, run);
    void run.finally(() => this.kick());
  }

  private async deliver(row: OutboxDoc, endpoint: EndpointDoc, cursor: Cursor): Promise<void> {
    if (row.attempts >= this.opts.maxAttempts) {
      // Its last attempt was made and refused; only the write saying so did not land (or the limit
      // was lowered since): it is written dead, not sent again.
      const error = row.lastError ?? `no attempts left (${row.attempts})`;
      const refused = { ok: false as const, statusCode: row.lastStatusCode, error };
      return applyOutcome(this.outcomes, row, endpoint, cursor, row.attempts, refused);
    }
    const attempt = row.attempts + 1;
    const res = await attemptDelivery(row, {
      url: endpoint.url,
      secret: endpoint.secret,
      attempt,
      timeoutMs: this.opts.timeoutMs,
      policy: this.opts.policy,
      signal: this.abort.signal,
    });
    if (!res.ok && res.aborted) return;
    await applyOutcome(this.outcomes, row, endpoint, cursor, attempt, res);
  }
}
