// The delivery loop of one node. Every `pollMs` (and at once after a new event or a finished attempt)
// it: renews the leases it holds, gives up those of endpoints with nothing pending, claims free
// endpoints that have pending rows, and for each held endpoint sends the head of each account's queue
// that is due. An account's next row is only sent after its head is delivered or dead (ordering);
// different accounts and endpoints proceed in parallel up to `concurrency`.
import type { Logger } from "moleculer";
import { backoffDelay, type BackoffOptions } from "./backoff.ts";
import type { EndpointsRepo } from "./endpoints-repo.ts";
import { attemptDelivery } from "./http-delivery.ts";
import type { HeldLease, LeaseRepo } from "./leases.ts";
import type { OutboxRepo } from "./outbox.ts";
import type { OutboxDoc } from "./types.ts";

export interface DeliveryLoopOptions {
  /** Scan period. @default 1000 */
  pollMs: number;
  /** Lease time-to-live of an endpoint's queue. @default 30000 */
  leaseTtlMs: number;
  /** Timeout of one HTTP attempt. @default 10000 */
  timeoutMs: number;
  /** Attempts before a row is `dead`. @default 10 */
  maxAttempts: number;
  backoff: BackoffOptions;
  /** Attempts in flight on this node. @default 16 */
  concurrency: number;
  /** Delivered and dead rows are deleted after this long; 0 keeps them. @default 604800000 (7 days) */
  retentionMs: number;
}

/** How often a node prunes the outbox (each node does; pruning is idempotent). */
const PRUNE_EVERY_MS = 10 * 60 * 1000;

interface Repos {
  outbox: OutboxRepo;
  leases: LeaseRepo;
  endpoints: EndpointsRepo;
}

export class DeliveryLoop {
  private readonly held = new Map<string, HeldLease>();
  /** (endpoint, account) queues with an attempt in flight. */
  private readonly inFlight = new Map<string, Promise<void>>();
  /** Last recorded outcome per (endpoint, account): a scan that read a row before its attempt was
   * recorded must not send that attempt again. `attempts: Infinity` = delivered or dead. */
  private readonly progress = new Map<string, { seq: number; attempts: number }>();
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private lastPrune = Date.now() - PRUNE_EVERY_MS * Math.random();

  constructor(
    private readonly repos: Repos,
    private readonly opts: DeliveryLoopOptions,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.schedule(0);
  }

  /** Scan now (a new event was recorded, or an attempt finished). */
  kick(): void {
    if (this.stopped) return;
    if (this.ticking) this.again = true;
    else this.schedule(0);
  }

  /** Endpoints whose queue this node delivers now. */
  heldEndpoints(): string[] {
    return [...this.held.keys()];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking;
    this.abort.abort();
    await Promise.allSettled(this.inFlight.values());
    await Promise.allSettled([...this.held.values()].map((l) => this.repos.leases.release(l)));
    this.held.clear();
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.runTick(), ms);
  }

  private runTick(): void {
    this.timer = null;
    this.ticking = this.tick()
      .catch((err) => this.logger.warn(`webhook delivery scan failed: ${(err as Error).message}`))
      .finally(() => {
        this.ticking = null;
        const again = this.again;
        this.again = false;
        this.schedule(again ? 0 : this.opts.pollMs);
      });
  }

  private async tick(): Promise<void> {
    await this.renewLeases();
    await this.pruneIfDue();
    const withWork = new Set(await this.repos.outbox.endpointsWithPending());
    for (const [endpointId, lease] of this.held) {
      if (withWork.has(endpointId) || this.hasInFlight(endpointId)) continue;
      this.held.delete(endpointId);
      await this.repos.leases.release(lease);
    }
    for (const endpointId of withWork) {
      if (this.stopped) return;
      if (!this.held.has(endpointId)) {
        const lease = await this.repos.leases.claim(endpointId);
        if (!lease) continue;
        this.logger.debug(`webhooks: delivering endpoint ${endpointId} (term ${lease.term})`);
        this.held.set(endpointId, lease);
      }
      await this.dispatchDue(endpointId);
    }
  }

  private async pruneIfDue(): Promise<void> {
    if (this.opts.retentionMs <= 0 || Date.now() - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = Date.now();
    const deleted = await this.repos.outbox.prune(new Date(Date.now() - this.opts.retentionMs));
    if (deleted > 0) this.logger.info(`webhooks: pruned ${deleted} finished outbox rows`);
  }

  private async renewLeases(): Promise<void> {
    const now = Date.now();
    for (const [endpointId, lease] of this.held) {
      if (lease.validUntil - now > (this.opts.leaseTtlMs * 2) / 3) continue;
      const ok = await this.repos.leases.renew(lease).catch(() => false);
      if (!ok) {
        this.logger.warn(`webhooks: lost the lease of endpoint ${endpointId}`);
        this.held.delete(endpointId);
      }
    }
  }

  private hasInFlight(endpointId: string): boolean {
    for (const key of this.inFlight.keys()) if (key.startsWith(`${endpointId}|`)) return true;
    return false;
  }

  private async dispatchDue(endpointId: string): Promise<void> {
    const endpoint = await this.repos.endpoints.findById(endpointId);
    if (!endpoint || !endpoint.enabled) return;
    const now = Date.now();
    for (const head of await this.repos.outbox.heads(endpointId)) {
      const key = `${endpointId}|${head.accountId}`;
      if (this.inFlight.has(key) || this.inFlight.size >= this.opts.concurrency) continue;
      const seen = this.progress.get(key);
      if (seen && (head.seq < seen.seq || (head.seq === seen.seq && head.attempts < seen.attempts))) continue;
      if (new Date(head.nextAttemptAt).getTime() > now) continue;
      const lease = this.held.get(endpointId);
      // Self-fencing: start no attempt that could outlive our lease.
      if (!lease || now + this.opts.timeoutMs >= lease.validUntil) continue;
      const run = this.deliver(head, endpoint.url, endpoint.secret)
        .catch((err) =>
          this.logger.warn(`webhooks: delivery of ${head._id} failed: ${(err as Error).message}`),
        )
        .finally(() => {
          this.inFlight.delete(key);
          this.kick();
        });
      this.inFlight.set(key, run);
    }
  }

  private async deliver(row: OutboxDoc, url: string, secret: string): Promise<void> {
    const attempt = row.attempts + 1;
    const key = `${row.endpointId}|${row.accountId}`;
    const res = await attemptDelivery(row, {
      url,
      secret,
      attempt,
      timeoutMs: this.opts.timeoutMs,
      signal: this.abort.signal,
    });
    if (!res.ok && res.aborted) return;
    const { outbox } = this.repos;
    if (res.ok) {
      await outbox.markDelivered(row._id, attempt, res.statusCode);
      this.progress.set(key, { seq: row.seq, attempts: Infinity });
      return;
    }
    if (attempt >= this.opts.maxAttempts) {
      await outbox.markFailed(row._id, {
        attempts: attempt,
        error: res.error,
        statusCode: res.statusCode,
        nextAttemptAt: null,
      });
      this.progress.set(key, { seq: row.seq, attempts: Infinity });
      this.logger.warn(
        `webhooks: ${row.event} ${row.eventId} to ${url} is dead after ${attempt} attempts: ${res.error}`,
      );
      return;
    }
    const delay = backoffDelay(attempt, this.opts.backoff);
    await outbox.markFailed(row._id, {
      attempts: attempt,
      error: res.error,
      statusCode: res.statusCode,
      nextAttemptAt: new Date(Date.now() + delay),
    });
    this.progress.set(key, { seq: row.seq, attempts: attempt });
  }
}
