// Delivered marks written in the background: once a receiver accepted a row, its queue moves on at once
// and the row's `delivered` update is queued here, written by a few writers (more concurrent writes only
// contend for FerretDB's single writer). Until its mark lands a row counts as delivered on this node
// (`has`), so a scan that still reads it `pending` does not send it again.
import type { Logger } from "moleculer";

export interface MarkStore {
  markDelivered(id: string, attempts: number, statusCode: number): Promise<void>;
}

interface Mark {
  id: string;
  attempts: number;
  statusCode: number;
  done: () => void;
}

export class DeliveredMarks {
  private readonly waiting = new Map<string, Promise<void>>();
  private readonly queue: Mark[] = [];
  private writers = 0;

  /**
   * @param landed called after each mark was written (or failed to be).
   * @param maxWriters marks written at once. @default 4
   */
  constructor(
    private readonly store: MarkStore,
    private readonly logger: Pick<Logger, "warn">,
    private readonly landed: () => void,
    private readonly maxWriters = 4,
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
    for (let mark = this.queue.shift(); mark; mark = this.queue.shift()) {
      try {
        await this.store.markDelivered(mark.id, mark.attempts, mark.statusCode);
      } catch (err) {
        // The row stays pending in the database: a later holder delivers it again (at least once).
        this.logger.warn(`webhooks: marking ${mark.id} delivered failed: ${(err as Error).message}`);
      }
      this.waiting.delete(mark.id);
      mark.done();
      this.landed();
    }
  }
}
