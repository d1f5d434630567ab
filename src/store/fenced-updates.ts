// Group commit for fenced status writes (`{_id, node, epoch}` → `$set`): those that arrive while a
// write is in flight go out together in one unordered `bulkWrite` of `updateOne`s when it returns; a
// lone write goes out at once. A burst of new accounts writes 50 `qr_scanning` statuses at once: one
// command instead of 50 costs the owner a tenth of the driver's CPU and FerretDB its per-command work.
//
// Each caller still learns whether its own filter matched (its fence holds). A bulk write answers only
// how many matched in all: when that is every one, every fence held; otherwise each write is done
// again alone (a `$set` of the same values: the ones that landed change nothing) and answers for
// itself. A session's writes go one at a time, so none of its own is in between.
import type { AnyBulkWriteOperation, Collection, Document, Filter, UpdateFilter } from "mongodb";
import { retryTransient } from "./mongo.ts";

interface Pending<T extends Document> {
  filter: Filter<T>;
  update: UpdateFilter<T>;
  resolve: (matched: boolean) => void;
  reject: (err: unknown) => void;
}

export class FencedUpdateBatcher<T extends Document> {
  private queue: Pending<T>[] = [];
  private busy = false;

  /** @param maxBatch writes per command. @default 200 */
  constructor(
    private readonly col: Collection<T>,
    private readonly maxBatch = 200,
  ) {}

  /** Resolves whether a document matched `filter` (and got `update`). */
  update(filter: Filter<T>, update: UpdateFilter<T>): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.queue.push({ filter, update, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    if (this.busy || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.maxBatch);
    this.busy = true;
    void this.flush(batch).finally(() => {
      this.busy = false;
      this.pump();
    });
  }

  private async flush(batch: Pending<T>[]): Promise<void> {
    if (batch.length > 1) {
      const ops = batch.map((p): AnyBulkWriteOperation<T> => ({
        updateOne: { filter: p.filter, update: p.update },
      }));
      const all = await retryTransient(() => this.col.bulkWrite(ops, { ordered: false })).then(
        (res) => res.matchedCount === batch.length,
        () => false,
      );
      if (all) {
        for (const p of batch) p.resolve(true);
        return;
      }
    }
    // Alone, or some fence did not hold (or the bulk write failed): each answers for itself.
    await Promise.all(
      batch.map((p) =>
        retryTransient(() => this.col.updateOne(p.filter, p.update)).then(
          (res) => p.resolve(res.matchedCount === 1),
          p.reject,
        ),
      ),
    );
  }
}
