// Group commit for inserts: those that arrive while a write is in flight go out together in one
// `insertMany({ordered: false})` when it returns; a lone insert goes out at once. Each caller still
// gets its own answer: its document's write error (a duplicate `_id`, code 11000, as `insertOne`
// would have thrown), or the whole command's error.
// Why: on FerretDB (SQLite) every command is a transaction of its own, written one at a time — 50
// concurrent `insertOne` took 25–55 ms, one `insertMany` of the same 50 took 4 ms (50 creates at once
// each waited for the others' commits). On MongoDB it saves round trips.
//
// A write the server refused while busy is tried again (retryTransient). FerretDB can answer "database
// is locked" after some of the documents landed; the next try finds them in the way. So each write
// stores a token (`w`) in its documents, and a document refused as a duplicate after such a try is
// looked up: holding this write's token, it is this caller's, inserted, not another writer's.
import { randomUUID } from "node:crypto";
import { MongoBulkWriteError, MongoServerError, type Collection, type Document } from "mongodb";
import { GroupCommit, type Waiting } from "./group-commit.ts";
import { isDuplicateKey, retryTransient } from "./mongo.ts";

/** What the batcher adds to each document it writes: the token of the write. */
export interface InsertToken {
  w?: string;
}

export class InsertBatcher<T extends Document & InsertToken> {
  private readonly group: GroupCommit<T, void>;
  /** The collection, untyped: the documents written carry the token beside T's fields. */
  private readonly col: Collection;

  /** @param maxBatch documents per command. @default 500 */
  constructor(col: Collection<T>, maxBatch = 500) {
    this.col = col as unknown as Collection;
    this.group = new GroupCommit((batch) => this.flush(batch), maxBatch);
  }

  insert(doc: T): Promise<void> {
    return this.group.add(doc);
  }

  private async flush(all: Waiting<T, void>[]): Promise<void> {
    // A second document with an `_id` the batch already holds is refused here: both would carry this
    // write's token, and after a retry the second would pass for stored.
    const ids = new Set<unknown>();
    const batch = all.filter((p) => {
      const id = String(p.item._id);
      if (!ids.has(id)) {
        ids.add(id);
        return true;
      }
      p.reject(
        new MongoServerError({ message: `E11000 duplicate key: _id ${id} twice in one write`, code: 11000 }),
      );
      return false;
    });
    const w = randomUUID();
    const docs = batch.map((p) => ({ ...p.item, w }));
    let tries = 0;
    try {
      await retryTransient((attempt) => {
        tries = attempt;
        return this.col.insertMany(docs, { ordered: false });
      });
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
      if (tries > 1) for (const i of await this.ownAmong(docs, failed, w)) failed.delete(i);
      batch.forEach((p, i) => {
        if (failed.has(i)) p.reject(failed.get(i));
        else if (unsure) p.reject(err);
        else p.resolve();
      });
    }
  }

  /** Which of the documents refused as duplicates are stored with this write's token. */
  private async ownAmong(docs: T[], failed: Map<number, unknown>, w: string): Promise<number[]> {
    const refused = [...failed].filter(([, e]) => isDuplicateKey(e)).map(([i]) => i);
    if (!refused.length) return [];
    const own = await idsWithToken(
      this.col,
      refused.map((i) => docs[i]._id),
      w,
    );
    return refused.filter((i) => own.has(String(docs[i]._id)));
  }
}

/** Which of `ids` are stored holding the insert token `w` (one `$in` read by `_id`), as strings. */
export async function idsWithToken<T extends Document>(
  col: Collection<T>,
  ids: string[],
  w: string,
): Promise<Set<string>> {
  const untyped = col as unknown as Collection;
  const stored = await retryTransient(() =>
    untyped.find({ _id: { $in: ids } } as Document, { projection: { w: 1 } }).toArray(),
  );
  return new Set(stored.filter((d) => d.w === w).map((d) => String(d._id)));
}
