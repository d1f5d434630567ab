// Delivered marks written in the background: once a receiver accepted a row, its queue moves on at once
// and the row's `delivered` update is queued here. A writer takes what is queued (up to `BATCH`) and
// writes it as one update; marks queued meanwhile go in the next. Until its mark lands a row counts as
// delivered on this node (`has`), so a scan that still reads it `pending` does not send it again.
//
// A write that fails (past the store's own retries) is written again after a back-off, for as long as
// it takes: a mark given up would let a scan take the row for pending and send it again after the rows
// that followed it. That holds after the node lost the endpoint's lease too (a row accepted is
// delivered whoever holds the endpoint next, and this node may take it back). Only when the node stops
// (`close`) are marks given up; the endpoint's next holder then sends those rows again (at least once).
import type { Logger } from "moleculer";
import { withTimeout } from "../with-timeout.ts";
import { backoffDelay, type BackoffOptions } from "./backoff.ts";

export interface MarkStore {
  markDelivered(marks: { id: string; attempts: number; statusCode: number }[]): Promise<void>;
}

/** A row to mark delivered: its `_id`, its endpoint, and what its accepted attempt was. */
export interface DeliveredMark {
  id: string;
  endpointId: string;
  attempts: number;
  statusCode: number;
}

interface Mark extends DeliveredMark {
  /** Resolves once the mark landed or was given up. */
  settled: Promise<void>;
  done: () => void;
}

export interface DeliveredMarksOptions {
  /** Batches written at once. @default 2 */
  maxWriters?: number;
  /** Delay before failed marks are written again, doubled per write failed in a row, with jitter.
   * @default { baseMs: 250, maxMs: 10000 } */
  retry?: BackoffOptions;
}

/** Marks one write carries at most. */
const BATCH = 500;

export class DeliveredMarks {
  private readonly waiting = new Map<string, Mark>();
  private readonly queue: Mark[] = [];
  private writers = 0;
  private readonly maxWriters: number;
  private readonly retry: BackoffOptions;
  /** Failed marks waiting for `retryTimer` to queue them again. */
  private readonly failed: Mark[] = [];
  private retryTimer: NodeJS.Timeout | null = null;
  /** Writes failed in a row (the back-off grows with it). */
  private failures = 0;
  private closed = false;

  /** @param landed called after each batch was written (or failed to be). */
  constructor(
    private readonly store: MarkStore,
    private readonly logger: Pick<Logger, "warn">,
    private readonly landed: () => void,
    opts: DeliveredMarksOptions = {},
  ) {
    this.maxWriters = opts.maxWriters ?? 2;
    this.retry = opts.retry ?? { baseMs: 250, maxMs: 10_000 };
  }

  /** Marks not written yet. */
  get size(): number {
    return this.waiting.size;
  }

  /** Whether the row's mark is still to be written. */
  has(id: string): boolean {
    return this.waiting.has(id);
  }

  add(mark: DeliveredMark): void {
    let done!: () => void;
    const settled = new Promise<void>((resolve) => (done = resolve));
    const queued: Mark = { ...mark, settled, done };
    this.waiting.get(mark.id)?.done();
    this.waiting.set(mark.id, queued);
    this.queue.push(queued);
    this.startWriters();
  }

  /** Resolves with true once every mark queued so far was written (or given up), or with false after
   * `timeoutMs`. Failed marks waiting for their back-off are written again at once. */
  async flushed(timeoutMs = Infinity): Promise<boolean> {
    if (this.failed.length) this.retryNow();
    const all = Promise.all([...this.waiting.values()].map((m) => m.settled)).then(() => true);
    if (timeoutMs === Infinity) return all;
    return (await withTimeout(all, timeoutMs)) ?? false;
  }

  /** Gives up every mark not written yet and writes no more (the node stops). */
  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.queue.length = 0;
    this.failed.length = 0;
    for (const mark of [...this.waiting.values()]) this.settle(mark);
  }

  private startWriters(): void {
    while (!this.closed && this.queue.length && this.writers < this.maxWriters) {
      this.writers++;
      void this.write().finally(() => this.writers--);
    }
  }

  /** Still waited for (not written, dropped, or replaced by a newer mark of the row). */
  private isWaiting(mark: Mark): boolean {
    return this.waiting.get(mark.id) === mark;
  }

  private settle(mark: Mark): void {
    if (this.isWaiting(mark)) this.waiting.delete(mark.id);
    mark.done();
  }

  private async write(): Promise<void> {
    for (let batch = this.take(); batch.length; batch = this.take()) {
      try {
        await this.store.markDelivered(batch);
        this.failures = 0;
        for (const mark of batch) this.settle(mark);
      } catch (err) {
        this.failures++;
        const kept = batch.filter((m) => this.isWaiting(m));
        const delay = backoffDelay(this.failures, this.retry);
        this.logger.warn(
          `webhooks: marking ${batch.length} rows delivered failed: ${(err as Error).message}` +
            (kept.length ? `; writing them again in ${delay} ms` : ""),
        );
        this.retryLater(kept, delay);
      }
      this.landed();
    }
  }

  /** The next batch: up to BATCH marks still waited for. */
  private take(): Mark[] {
    let batch: Mark[] = [];
    while (!batch.length && this.queue.length)
      batch = this.queue.splice(0, BATCH).filter((m) => this.isWaiting(m));
    return batch;
  }

  private retryLater(marks: Mark[], delayMs: number): void {
    if (this.closed || !marks.length) return;
    this.failed.push(...marks);
    this.retryTimer ??= setTimeout(() => this.retryNow(), delayMs).unref();
  }

  private retryNow(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.queue.unshift(...this.failed.splice(0));
    this.startWriters();
  }
}
