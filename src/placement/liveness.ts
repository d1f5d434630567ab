// Node liveness (DESIGN.md §2–3): each worker renews its key in the `nodes` KV bucket, whose TTL is the
// lease. A node may lose a workspace to another only once that key has expired, so a node that cannot
// renew in time must stop its sessions first: it fences itself at `sentAt + ttl − margin`, where
// `sentAt` is when its last successful renewal left (the server's expiry can only be later), and
// `margin` is the time the node needs to stop its sessions once fenced (see FENCE_STOP_BUDGET_MS).
// A renewal is a compare-and-set on the revision the last write left, so a lapse the node's clock did
// not see (a paused VM, whose monotonic clock stood still while the server dropped the key) ends the
// term too, instead of a plain write recreating the key under sessions a survivor now runs as well.
import { hostname } from "node:os";
import type { KV } from "nats";
import { isCasConflict } from "./placement-table.ts";

/** Milliseconds on a clock that never steps back (a wall-clock step, an NTP correction or a VM resume,
 * must not make a lapsed lease look current): every local deadline of the lease is on it. */
const monotonicNow = (): number => performance.now();

export interface NodeRecord {
  nodeId: string;
  pid: number;
  host: string;
  services: string[];
  /** Sessions this node accepts (placement weight). */
  capacity: number;
  /** Sessions running now. */
  sessions: number;
  /** A draining node takes no new workspaces. */
  draining: boolean;
  /** Epoch ms of the renewal that wrote this record. */
  renewedAt: number;
}

/**
 * Time a fenced node is given to stop every session before its lease can expire on the server. A fence
 * kills engines rather than closing them: a webjs session's process group is gone 35–100 ms after the
 * kill (measured: one browser ~65 ms, 5 sessions' ~60 Chromium processes ~100 ms); the rest is room
 * for a late timer on a busy event loop. A fence that took longer than half the margin widens it.
 */
export const FENCE_STOP_BUDGET_MS = 250;

export interface LivenessOptions {
  kv: KV;
  nodeId: string;
  /** Renewal period. @default 500 */
  renewMs: number;
  /** Lease TTL (the bucket's TTL). @default 3500 */
  ttlMs: number;
  /** Time the node needs to stop every session once fenced. @default FENCE_STOP_BUDGET_MS */
  stopBudgetMs?: number;
  /** The dynamic part of the record, read at every renewal. */
  describe(): Pick<NodeRecord, "services" | "capacity" | "sessions" | "draining">;
  /** The lease can no longer be trusted: stop every session now (synchronously as far as possible). */
  onFence(): void | Promise<void>;
  /** A new lease term began (first renewal, or the first one after a fence). */
  onLease?(term: number): void;
  logger?: { warn(...a: unknown[]): void; info(...a: unknown[]): void };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export class Liveness {
  /** Increases each time a lease starts after none or a fence; ownership is per term. */
  term = 0;
  private validUntil = 0;
  private fenced = true;
  private paused = false;
  private stopped = false;
  /** The lease write of the renewal under way, if any (it settles with the send time, never rejects). */
  private writing: Promise<number | undefined> | null = null;
  private renewTimer?: NodeJS.Timeout;
  private fenceTimer?: NodeJS.Timeout;
  /** Revision of this node's key as the last write of this term left it (a renewal's compare-and-set). */
  private revision = 0;
  private margin: number;
  /** Longest time a fence of this node took to stop its sessions. */
  private longestStopMs = 0;

  constructor(private readonly opts: LivenessOptions) {
    this.margin = this.marginFor(opts.stopBudgetMs ?? FENCE_STOP_BUDGET_MS);
  }

  /** Time kept between the local deadline and the earliest server-side expiry: the stop time, and
   * never more than a quarter of the TTL (test-sized leases of a few hundred ms stay usable). */
  private marginFor(stopMs: number): number {
    return Math.min(Math.floor(this.opts.ttlMs / 4), Math.max(Math.ceil(stopMs), 1));
  }

  /** Milliseconds between this node's fence and the earliest expiry of its lease on the server. */
  get fenceMarginMs(): number {
    return this.margin;
  }

  /** True while this node holds a current lease. Checked synchronously against the clock, so a node
   * thawed after SIGSTOP sees its lease gone before its fence timer has even run. */
  isCurrent(): boolean {
    if (!this.fenced && !this.stopped && monotonicNow() >= this.validUntil) this.checkFence();
    return !this.fenced && !this.stopped && monotonicNow() < this.validUntil;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Takes the first lease; throws when NATS cannot be reached. */
  async start(): Promise<void> {
    this.stopped = false;
    if (await this.renew()) return;
    // A node that did not start must not take a lease later (its renewal timer runs on): it would count
    // as live, with nothing running. The removal also takes away a write that landed after its timeout.
    await this.stop(true);
    throw new Error(`could not take the liveness lease of ${this.opts.nodeId}`);
  }

  /** Test hook and fault injection: renewals stop (the lease will lapse and the node fence itself). */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.schedule(0);
  }

  /** Writes the record now (e.g. draining changed). A renewal under way wrote a record built before
   * the caller's change: this one is written once it is done. */
  async touch(): Promise<boolean> {
    while (this.writing) await this.writing;
    return this.renew();
  }

  /** Stops renewing; `remove` deletes the key so others see the leave at once (graceful stop). */
  async stop(remove = true): Promise<void> {
    this.stopped = true;
    // The term ends here: a start after it takes a new one.
    this.fenced = true;
    clearTimeout(this.renewTimer);
    clearTimeout(this.fenceTimer);
    if (remove)
      await withTimeout(this.opts.kv.delete(this.opts.nodeId), 2000, "lease removal").catch(() => undefined);
  }

  private record(): NodeRecord {
    return {
      nodeId: this.opts.nodeId,
      pid: process.pid,
      host: hostname(),
      ...this.opts.describe(),
      renewedAt: Date.now(),
    };
  }

  private async renew(): Promise<boolean> {
    if (this.stopped || this.writing) return false;
    if (this.paused) {
      this.schedule(this.opts.renewMs);
      return false;
    }
    const began = monotonicNow();
    this.writing = this.writeLease().catch((err: Error) => {
      this.opts.logger?.warn(`Lease renewal of ${this.opts.nodeId} failed: ${err.message}`);
      return undefined;
    });
    const sentAt = await this.writing;
    this.writing = null;
    const ok = sentAt !== undefined && !this.paused && !this.stopped && this.extend(sentAt);
    if (!this.stopped) this.schedule(Math.max(0, began + this.opts.renewMs - monotonicNow()));
    return ok;
  }

  /**
   * Writes the record; returns when the write that succeeded left (undefined: none to count). The first
   * write of a term is a plain put; each renewal after it a compare-and-set on the revision the last one
   * left. One refused because the key is no longer that revision means the server dropped the key (it
   * expired, or was removed), whatever this node's clock says: survivors may already run its workspaces.
   * It fences now, as its fence timer would have, and takes a new term.
   */
  private async writeLease(retried = false): Promise<number | undefined> {
    if (this.fenced) return this.putLease();
    const previous = this.revision;
    const sentAt = monotonicNow();
    try {
      this.revision = await this.write((kv, id, data) => kv.update(id, data, previous), "lease renewal");
      return sentAt;
    } catch (err) {
      if (!isCasConflict(err)) throw err;
    }
    // Once only: a key that moves on again is written by someone else too (a second process with this
    // node id), which no term can count on.
    const kept = retried ? undefined : await this.keptRevision(previous);
    if (kept !== undefined) this.revision = kept;
    else if (!this.fenced && !this.stopped) this.fence("its key expired or was removed on the server");
    if (this.stopped || this.paused) return undefined;
    // On the kept revision (a renewal given up on landed after all), or the first write of a new term.
    return this.writeLease(true);
  }

  /** The first write of a term: the key may be gone or still there from the previous term. */
  private async putLease(): Promise<number> {
    const sentAt = monotonicNow();
    this.revision = await this.write((kv, id, data) => kv.put(id, data), "lease");
    return sentAt;
  }

  private write(
    op: (kv: KV, id: string, data: Uint8Array) => Promise<number>,
    what: string,
  ): Promise<number> {
    const data = new TextEncoder().encode(JSON.stringify(this.record()));
    return withTimeout(op(this.opts.kv, this.opts.nodeId, data), this.opts.ttlMs - this.margin, what);
  }

  /** After a refused renewal: the key's revision if it was kept since `revision`, else undefined. Only
   * this node writes its key, and within a term only by compare-and-set, so a later revision still there
   * is a renewal of this node's that landed after it stopped waiting, with no gap before it. */
  private async keptRevision(revision: number): Promise<number | undefined> {
    const e = await withTimeout(
      this.opts.kv.get(this.opts.nodeId),
      this.opts.ttlMs - this.margin,
      "lease read",
    );
    return e?.operation === "PUT" && e.revision > revision ? e.revision : undefined;
  }

  /** Extends the lease to what a write that left at `sentAt` allows; false when it came too late. */
  private extend(sentAt: number): boolean {
    const until = sentAt + this.opts.ttlMs - this.margin;
    if (until <= monotonicNow()) return false;
    // An answer handled past the deadline, before the overdue fence timer ran (a busy event loop): the
    // term ended at the deadline (isCurrent() would have fenced), so this write begins the next one.
    this.checkFence();
    this.validUntil = until;
    this.armFence();
    if (this.fenced) {
      this.fenced = false;
      this.term++;
      this.opts.logger?.info(`Lease of ${this.opts.nodeId} taken (term ${this.term})`);
      this.opts.onLease?.(this.term);
    }
    return true;
  }

  /** Fences at the lease's local deadline. A timer may fire a millisecond before the wall clock reaches
   * it; then it waits out the rest instead of leaving the fence to the next `isCurrent()` call. */
  private armFence(): void {
    clearTimeout(this.fenceTimer);
    this.fenceTimer = setTimeout(
      () => {
        if (this.checkFence()) this.armFence();
      },
      Math.max(1, this.validUntil - monotonicNow()),
    );
  }

  private schedule(delay: number): void {
    clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(() => void this.renew(), delay);
  }

  /** The margin follows the real stop time: a fence that used more than half of it doubles what it
   * took into the next terms' margin (capped at a quarter of the TTL), so a host whose engines stop
   * slowly fences earlier instead of running past its lease. */
  stopTook(ms: number): void {
    this.longestStopMs = Math.max(this.longestStopMs, ms);
    const wanted = this.marginFor(
      Math.max(this.opts.stopBudgetMs ?? FENCE_STOP_BUDGET_MS, 2 * this.longestStopMs),
    );
    if (wanted > this.margin) {
      this.opts.logger?.warn(
        `Fencing ${this.opts.nodeId} took ${ms} ms: fence margin ${this.margin} → ${wanted} ms`,
      );
      this.margin = wanted;
    }
  }

  /** Fences the node once the local deadline has passed; returns whether the lease is current. */
  checkFence(): boolean {
    if (this.fenced || this.stopped) return false;
    if (monotonicNow() < this.validUntil) return true;
    this.fence();
    return false;
  }

  private fence(cause?: string): void {
    this.fenced = true;
    clearTimeout(this.fenceTimer);
    this.opts.logger?.warn(
      `Lease of ${this.opts.nodeId} lapsed: fencing (stopping every session)${cause ? `; ${cause}` : ""}`,
    );
    const began = monotonicNow();
    try {
      void Promise.resolve(this.opts.onFence())
        .then(() => this.stopTook(monotonicNow() - began))
        .catch((err) => this.opts.logger?.warn(`Fencing failed: ${(err as Error).message}`));
    } catch (err) {
      this.opts.logger?.warn(`Fencing failed: ${(err as Error).message}`);
    }
  }
}
