// A GridFS upload that fails midway: one of its chunk inserts refused, as a busy server refuses one.
import { Collection, type Document, type ObjectId } from "mongodb";

/** GridFS's default chunk size. */
export const CHUNK_BYTES = 255 * 1024;

/** The `failing`-th chunk insert into `bucket` is refused; every chunk insert is noted with its
 * settling, so a test can wait for the inserts still in flight when the upload failed. */
export function failChunk(bucket: string, failing: number) {
  const real = Collection.prototype.insertOne;
  const inserts: Promise<unknown>[] = [];
  let uploadId: ObjectId | undefined;
  Collection.prototype.insertOne = function (this: Collection, doc: Document, ...rest: unknown[]) {
    if (this.collectionName !== `${bucket}.chunks`) return real.call(this, doc, ...(rest as []));
    uploadId = doc.files_id as ObjectId;
    const insert =
      inserts.length + 1 === failing
        ? Promise.reject(new Error("database is locked"))
        : real.call(this, doc, ...(rest as []));
    inserts.push(insert.catch(() => undefined));
    return insert;
  } as typeof real;
  return {
    restore: () => void (Collection.prototype.insertOne = real),
    /** The upload's id, once all its chunk inserts have settled. */
    settled: async () => {
      await Promise.allSettled(inserts);
      return uploadId!;
    },
  };
}
