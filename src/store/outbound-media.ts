// The bytes of media messages on their way from the gateway that took the request to the node that
// owns the account: too large for a bus message (NATS caps payloads at 1 MB by default), so they wait
// in the GridFS bucket `outbound_media`. The owner deletes a file once it has handled its send; a file
// whose send never reached an owner is pruned after a while (one a queued send still names is kept).
import { randomBytes } from "node:crypto";
import { GridFSBucket, type Db } from "mongodb";
import { uploadFile } from "./gridfs-upload.ts";

export const OUTBOUND_MEDIA_BUCKET = "outbound_media";

export class OutboundMediaStore {
  private readonly bucket: GridFSBucket;

  constructor(db: Db) {
    this.bucket = new GridFSBucket(db, { bucketName: OUTBOUND_MEDIA_BUCKET });
  }

  /** Stores `data`; resolves with the id to hand to the owner. */
  async put(data: Buffer): Promise<string> {
    const mediaId = `med_${randomBytes(12).toString("hex")}`;
    await uploadFile(this.bucket, mediaId, data);
    return mediaId;
  }

  /** The bytes stored under `mediaId`, or null when there are none (pruned, or already sent). */
  async get(mediaId: string): Promise<Buffer | null> {
    const [file] = await this.bucket.find({ filename: mediaId }).limit(1).toArray();
    if (!file) return null;
    const chunks: Buffer[] = [];
    for await (const chunk of this.bucket.openDownloadStream(file._id)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async delete(mediaId: string): Promise<void> {
    const files = await this.bucket.find({ filename: mediaId }).toArray();
    for (const f of files) await this.bucket.delete(f._id).catch(() => undefined);
  }

  /** Deletes files stored before `before` (sends that never reached an owner), except those named in
   * `keep` (media ids). Returns how many it deleted. */
  async prune(before: Date, keep: ReadonlySet<string> = new Set()): Promise<number> {
    const files = (await this.bucket.find({ uploadDate: { $lt: before } }).toArray()).filter(
      (f) => !keep.has(f.filename),
    );
    for (const f of files) await this.bucket.delete(f._id).catch(() => undefined);
    return files.length;
  }
}
