// Auth state of every session: one opaque blob per sessionId in MongoDB, so a session can be restored
// on any node without a new QR scan. Shared by all engines.
//
// Small blobs (up to INLINE_MAX_BYTES: the simulated engine's, any small engine state) are one document
// `{_id: sessionId}` of `<bucket>.inline`, read and written by `_id` alone — one round trip, and the only
// filter FerretDB's SQLite backend serves without decoding the whole collection. Larger ones (a webjs
// browser profile) live in the GridFS bucket `<bucket>`. Blobs saved by earlier versions (all in GridFS)
// stay readable: a load without an inline document falls back to GridFS.
import { Binary, GridFSBucket, type Collection, type Db } from "mongodb";

export interface AuthStore {
  load(sessionId: string): Promise<Buffer | null>;
  save(sessionId: string, blob: Buffer): Promise<void>;
  delete(sessionId: string): Promise<void>;
  has(sessionId: string): Promise<boolean>;
}

/** Blobs up to this size are kept inline (well under MongoDB's 16 MB document limit). */
export const INLINE_MAX_BYTES = 1024 * 1024;

interface InlineBlob {
  _id: string;
  data: Binary;
  size: number;
  savedAt: Date;
}

/** MongoDB-backed AuthStore (inline documents for small blobs, GridFS for large ones). A save never
 * destroys the previous state before the new one is complete, so a crash mid-save leaves a readable one. */
export class GridFsAuthStore implements AuthStore {
  private readonly bucket: GridFSBucket;
  private readonly inline: Collection<InlineBlob>;
  constructor(db: Db, bucketName = "auth_state") {
    this.bucket = new GridFSBucket(db, { bucketName });
    this.inline = db.collection<InlineBlob>(`${bucketName}.inline`);
  }

  private async files(sessionId: string) {
    return this.bucket.find({ filename: sessionId }).sort({ uploadDate: -1, _id: -1 }).toArray();
  }

  async load(sessionId: string): Promise<Buffer | null> {
    const inline = await this.inline.findOne({ _id: sessionId });
    if (inline) return Buffer.from(inline.data.buffer);
    const [latest] = await this.files(sessionId);
    if (!latest) return null;
    const chunks: Buffer[] = [];
    for await (const chunk of this.bucket.openDownloadStream(latest._id)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async save(sessionId: string, blob: Buffer): Promise<void> {
    if (blob.length <= INLINE_MAX_BYTES) {
      // One atomic replace: the old state until it lands, the new one after.
      await this.inline.replaceOne(
        { _id: sessionId },
        { data: new Binary(blob), size: blob.length, savedAt: new Date() },
        { upsert: true },
      );
      // GridFS copies of this session are now stale (a load reads the inline document first).
      for (const f of await this.files(sessionId)) await this.bucket.delete(f._id).catch(() => undefined);
      return;
    }
    const upload = this.bucket.openUploadStream(sessionId, { metadata: { size: blob.length } });
    await new Promise<void>((resolve, reject) => {
      upload.once("error", reject);
      upload.once("finish", () => resolve());
      upload.end(blob);
    });
    // The new state is complete: the inline copy (read first) and older files go.
    await this.inline.deleteOne({ _id: sessionId });
    const older = (await this.files(sessionId)).filter((f) => !f._id.equals(upload.id));
    for (const f of older) await this.bucket.delete(f._id).catch(() => undefined);
  }

  async delete(sessionId: string): Promise<void> {
    await this.inline.deleteOne({ _id: sessionId });
    for (const f of await this.files(sessionId)) await this.bucket.delete(f._id).catch(() => undefined);
  }

  async has(sessionId: string): Promise<boolean> {
    if (await this.inline.findOne({ _id: sessionId }, { projection: { _id: 1 } })) return true;
    return (await this.files(sessionId)).length > 0;
  }
}
