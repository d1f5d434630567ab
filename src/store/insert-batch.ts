// Group commit for inserts: those that arrive while a write is in flight go out together in one
// `insertMany({ordered: false})` when it returns; a lone insert goes out at once. Each caller still
// gets its own answer: its document's write error (a duplicate `_id`, code 11000, as `insertOne`
// would have thrown), or the whole command's error.
// Why: on FerretDB (SQLite) every command is a transaction of its own, written one at a time — 50
// concurrent `insertOne` took 25–55 ms, one `insertMany` of the same 50 took 4 ms (50 creates at once
// each waited for the others' commits). On MongoDB it saves round trips.
import { MongoBulkWriteError, MongoServerError } from "mongodb";

interface Pending<T> {
  doc: T;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class InsertBatcher<T> {
  private queue: Pending<T>[] = [];
  private busy = false;

  /**
   * @param write inserts the documents, unordered (`insertMany(docs, {ordered: false})`), rejecting
   * with a MongoBulkWriteError that names the failed documents by index.
   * @param maxBatch documents per command. @default 500
   */
  constructor(
    private readonly write: (docs: T[]) => Promise<unknown>,
    private readonly maxBatch = 500,
  ) {}

  insert(doc: T): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ doc, resolve, reject });
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
    try {
      await this.write(batch.map((p) => p.doc));
      for (const p of batch) p.resolve();
    } catch (err) {
      if (!(err instanceof MongoBulkWriteError)) {
        for (const p of batch) p.reject(err);
        return;
      }
      const failed = new Map<number, unknown>();
      for (const e of [err.writeErrors ?? []].flat()) {
        failed.set(e.index, new MongoServerError({ message: e.errmsg ?? err.message, code: e.code }));
      }
      // A write concern error (or a bulk error naming no document) leaves the other inserts unsure.
      const unsure = failed.size === 0 || Boolean(err.result?.getWriteConcernError?.());
      batch.forEach((p, i) => {
        if (failed.has(i)) p.reject(failed.get(i));
        else if (unsure) p.reject(err);
        else p.resolve();
      });
    }
  }
}
