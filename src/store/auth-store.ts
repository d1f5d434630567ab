// Auth state of every session: one opaque blob per sessionId in a MongoDB GridFS bucket, so a session
// can be restored on any node without a new QR scan. Shared by all engines.
import { GridFSBucket, type Db } from "mongodb";

export interface AuthStore {
  load(sessionId: string): Promise<Buffer | null>;
  save(sessionId: string, blob: Buffer): Promise<void>;
  delete(sessionId: string): Promise<void>;
  has(sessionId: string): Promise<boolean>;
}

/** GridFS-backed AuthStore. A save writes the new file before removing older ones, so a crash
 * mid-save leaves the previous state readable. */
export class GridFsAuthStore implements AuthStore {
  private readonly bucket: GridFSBucket;
  constructor(db: Db, bucketName = "auth_state") {
    this.bucket = new GridFSBucket(db, { bucketName });
  }

  private async files(sessionId: string) {
    return this.bucket.find({ filename: sessionId }).sort({ uploadDate: -1, _id: -1 }).toArray();
  }

  async load(sessionId: string): Promise<Buffer | null> {
    const [latest] = await this.files(sessionId);
    if (!latest) return null;
    const chunks: Buffer[] = [];
    for await (const chunk of this.bucket.openDownloadStream(latest._id)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async save(sessionId: string, blob: Buffer): Promise<void> {
    const upload = this.bucket.openUploadStream(sessionId, { metadata: { size: blob.length } });
    await new Promise<void>((resolve, reject) => {
      upload.once("error", reject);
      upload.once("finish", () => resolve());
      upload.end(blob);
    });
    const older = (await this.files(sessionId)).filter((f) => !f._id.equals(upload.id));
    for (const f of older) await this.bucket.delete(f._id).catch(() => undefined);
  }

  async delete(sessionId: string): Promise<void> {
    for (const f of await this.files(sessionId)) await this.bucket.delete(f._id).catch(() => undefined);
  }

  async has(sessionId: string): Promise<boolean> {
    return (await this.files(sessionId)).length > 0;
  }
}
