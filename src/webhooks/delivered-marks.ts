// Delivered marks written in the background: once a receiver accepted a row, its queue moves on at once
// and the row's `delivered` update is queued here. A writer takes what is queued (up to `BATCH`) and
// writes it as one update; marks queued meanwhile go in the next. Until its mark lands a row counts as
// delivered on this node (`has`), so a scan that still reads it `pending` does not send it again.
import type { Logger } from "moleculer";

export interface MarkStore {
  markDelivered(marks: { id: string; attempts: number; statusCode: number }[]): Promise<void>;
}

interface Mark {
  id: string;
  attempts: number;
  statusCode: number;
  done: () => void;
}

/** Marks one write carries at most. */
const BATCH = 500;

export class DeliveredMarks {
  private readonly waiting = new Map<string, Promise<void>>();
  private readonly queue: Mark[] = [];
  private writers = 0;

  /**
   * @param landed called after each batch was written (or failed to be).
   * @param maxWriters batches written at once. @default 2
   */
  constructor(
    private readonly store: MarkStore,
    private readonly logger: Pick<Logger, "warn">,
    private readonly landed: () => void,
    private readonly maxWriters = 2,
  ) {}

  /** Marks not written yet. */
  get size(): number {
    return this.waiting.size;
  }

  /** Whether the row's mark is still to be written. */
  has(id: string): boolean {
    return this.waiting.has(id);
  }

  add(id: string, attempts: number, statusCode: number): void {
    let done!: () => void;
    this.waiting.set(id, new Promise<void>((resolve) => (done = resolve)));
    this.queue.push({ id, attempts, statusCode, done });
    while (this.writers < this.maxWriters) {
      this.writers++;
      void this.write().finally(() => this.writers--);
    }
  }

  /** Resolves once every mark queued so far was written (or failed). */
  async flushed(): Promise<void> {
    await Promise.allSettled(this.waiting.values());
  }

  private async write(): Promise<void> {
    for (let batch = this.queue.splice(0, BATCH); batch.length; batch = this.queue.splice(0, BATCH)) {
      try {
        await this.store.markDelivered(batch);
      } catch (err) {
        // The rows stay pending in the database: a later holder delivers them again (at least once).
        this.logger.warn(
          `webhooks: marking ${batch.length} rows delivered failed: ${(err as Error).message}`,
        );
      }
      for (const mark of batch) {
        this.waiting.delete(mark.id);
        mark.done();
      }
      this.landed();
    }
  }
}
