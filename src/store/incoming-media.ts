// The bytes of received media messages, kept by the account's owner in the GridFS bucket
// `incoming_media` for INCOMING_MEDIA_RETENTION_MS and served by GET …/messages/:messageId/media.
// One file per (account, message), named `<accountId>|<messageId>`; its metadata says whose it is and
// what it is. A file past its retention counts as gone before pruning deletes it (FerretDB has no TTL
// indexes), so what a client sees does not depend on when a worker last pruned.
import type { Readable } from "node:stream";
import { GridFSBucket, type Db, type GridFSFile } from "mongodb";
import { uploadFile } from "./gridfs-upload.ts";

export const INCOMING_MEDIA_BUCKET = "incoming_media";

export interface IncomingMediaMeta {
  workspaceId: string;
  accountId: string;
  messageId: string;
  mimetype: string;
  filename: string | null;
}

export interface StoredIncomingMedia extends IncomingMediaMeta {
  size: number;
  storedAt: Date;
  /** The bytes, read as they are streamed. */
  stream: Readable;
}

function fileNameOf(accountId: string, messageId: string): string {
  return `${accountId}|${messageId}`;
}

export class IncomingMediaStore {
  private readonly bucket: GridFSBucket;

  /** `retentionMs`: how long a file is served after it was stored. */
  constructor(
    db: Db,
    private readonly retentionMs: number,
  ) {
    this.bucket = new GridFSBucket(db, { bucketName: INCOMING_MEDIA_BUCKET });
  }

  /** Keeps the bytes of a message. A message received twice (an engine's replay) keeps the later copy. */
  async put(meta: IncomingMediaMeta, data: Buffer): Promise<void> {
    const name = fileNameOf(meta.accountId, meta.messageId);
    const earlier = await this.bucket.find({ filename: name }).toArray();
    await uploadFile(this.bucket, name, data, { metadata: meta });
    for (const f of earlier) await this.bucket.delete(f._id).catch(() => undefined);
  }

  /** The media of a message of an account in a workspace, while within its retention; null when there
   * is none, it expired, or the account belongs to another workspace. */
  async open(
    workspaceId: string,
    accountId: string,
    messageId: string,
    now = new Date(),
  ): Promise<StoredIncomingMedia | null> {
    const [file] = await this.bucket
      .find({ filename: fileNameOf(accountId, messageId) })
      .sort({ uploadDate: -1 })
      .limit(1)
      .toArray();
    const meta = file?.metadata as IncomingMediaMeta | undefined;
    if (!file || !meta || meta.workspaceId !== workspaceId || this.expired(file, now)) return null;
    return {
      workspaceId: meta.workspaceId,
      accountId: meta.accountId,
      messageId: meta.messageId,
      mimetype: meta.mimetype,
      filename: meta.filename ?? null,
      size: file.length,
      storedAt: file.uploadDate,
      stream: this.bucket.openDownloadStream(file._id),
    };
  }

  /** Deletes the files stored before the retention began (every worker may run it: idempotent). */
  async prune(now = new Date()): Promise<number> {
    const files = await this.bucket
      .find({ uploadDate: { $lt: new Date(now.getTime() - this.retentionMs) } })
      .toArray();
    for (const f of files) await this.bucket.delete(f._id).catch(() => undefined);
    return files.length;
  }

  /** Deletes every file of an account (the account was deleted). */
  async deleteAccount(accountId: string): Promise<number> {
    const files = await this.bucket.find({ "metadata.accountId": accountId }).toArray();
    for (const f of files) await this.bucket.delete(f._id).catch(() => undefined);
    return files.length;
  }

  /** How many files an account has (tests, operators). */
  async countOf(accountId: string): Promise<number> {
    return (await this.bucket.find({ "metadata.accountId": accountId }).toArray()).length;
  }

  private expired(file: GridFSFile, now: Date): boolean {
    return file.uploadDate.getTime() + this.retentionMs <= now.getTime();
  }
}
