// Auth state of every session: one opaque blob per sessionId in MongoDB, so a session can be restored
// on any node without a new QR scan. Shared by all engines.
//
// Each session has one document `{_id: sessionId}` in `<bucket>.inline`, read and written by `_id`
// (one round trip, and the only filter FerretDB's SQLite backend serves from its index). It holds a
// small blob itself (up to INLINE_MAX_BYTES), or points at a larger one (a webjs browser profile) in
// the GridFS bucket `<bucket>`. Blobs saved by earlier versions (GridFS only) stay readable.
//
// Fencing: the document also records the `{node, epoch}` of the last owner that loaded or saved the
// state. A stamped load or save is refused (NotOwnerError) when a newer epoch is recorded, so a node
// fenced out of a workspace cannot overwrite its new owner's state, even with a save already in flight.
import { Binary, GridFSBucket, type Collection, type Db, type Filter, type ObjectId } from "mongodb";
import { NotOwnerError } from "../errors.ts";
import { uploadFile } from "./gridfs-upload.ts";
import { isDuplicateKey } from "./mongo.ts";
import { SecretBox, SecretsKeyError } from "./secrets.ts";
import type { OwnerStamp } from "./stamp.ts";

type AuthStamp = OwnerStamp;

export interface AuthStore {
  /** With a stamp, also records the stamp as the state's owner; throws NotOwnerError when a newer
   * owner is recorded. */
  load(sessionId: string, stamp?: AuthStamp): Promise<Buffer | null>;
  /** With a stamp, refused (NotOwnerError, nothing changed) when a newer owner is recorded. */
  save(sessionId: string, blob: Buffer, stamp?: AuthStamp): Promise<void>;
  delete(sessionId: string, stamp?: AuthStamp): Promise<void>;
  has(sessionId: string): Promise<boolean>;
}

/** Blobs up to this size are kept inline (well under MongoDB's 16 MB document limit). */
export const INLINE_MAX_BYTES = 1024 * 1024;

interface AuthDoc {
  _id: string;
  data?: Binary;
  fileId?: ObjectId;
  size?: number;
  savedAt?: Date;
  node?: string;
  epoch?: number;
}

/** The session's document, unless an owner newer than `stamp` is recorded on it. Epochs grow with
 * every claim of a workspace and each is given to one node, so the epoch alone decides. */
function ownedBy(sessionId: string, stamp?: AuthStamp): Filter<AuthDoc> {
  if (!stamp) return { _id: sessionId };
  return { _id: sessionId, $or: [{ epoch: { $exists: false } }, { epoch: { $lte: stamp.epoch } }] };
}

function refused(sessionId: string, stamp: AuthStamp): NotOwnerError {
  return new NotOwnerError(sessionId, stamp.node, { sessionId, epoch: stamp.epoch, authState: true });
}

/** MongoDB-backed AuthStore (inline documents for small blobs, GridFS for large ones). A save never
 * destroys the previous state before the new one is complete, so a crash mid-save leaves a readable one. */
export class GridFsAuthStore implements AuthStore {
  private readonly bucket: GridFSBucket;
  private readonly docs: Collection<AuthDoc>;
  /** @param box seals the blobs at rest (null: stored as they are) */
  constructor(
    db: Db,
    private readonly box: SecretBox | null = null,
    bucketName = "auth_state",
  ) {
    this.bucket = new GridFSBucket(db, { bucketName });
    this.docs = db.collection<AuthDoc>(`${bucketName}.inline`);
  }

  private async files(sessionId: string) {
    return this.bucket.find({ filename: sessionId }).sort({ uploadDate: -1, _id: -1 }).toArray();
  }

  /** Upserts `set` on the session's document if `stamp` is not older than its recorded owner. With a
   * stamp, an existing document of a newer owner makes the upsert insert a duplicate `_id`: refused. */
  private async write(
    sessionId: string,
    stamp: AuthStamp | undefined,
    update: object,
  ): Promise<AuthDoc | null> {
    try {
      return await this.docs.findOneAndUpdate(ownedBy(sessionId, stamp), update, {
        upsert: true,
        returnDocument: "after",
      });
    } catch (err) {
      if (stamp && isDuplicateKey(err)) throw refused(sessionId, stamp);
      throw err;
    }
  }

  async load(sessionId: string, stamp?: AuthStamp): Promise<Buffer | null> {
    const stored = await this.loadStored(sessionId, stamp);
    if (!stored) return null;
    if (!this.box) {
      if (SecretBox.isSealed(stored))
        throw new SecretsKeyError("Stored auth state is sealed but SECRETS_KEY is not set", { sessionId });
      return stored;
    }
    const { plain, stale } = this.box.open(stored);
    // A plain (older) or older-key blob is sealed again under the current key by its owner.
    if (stale && stamp) await this.save(sessionId, plain, stamp);
    return plain;
  }

  private async loadStored(sessionId: string, stamp?: AuthStamp): Promise<Buffer | null> {
    const doc = stamp
      ? await this.write(sessionId, stamp, { $set: { node: stamp.node, epoch: stamp.epoch } })
      : await this.docs.findOne({ _id: sessionId });
    if (doc?.data) return Buffer.from(doc.data.buffer);
    if (doc?.fileId) {
      const pointed = await this.download(doc.fileId);
      if (pointed) return pointed;
      // Gone (a save cut short as it cleaned up): the newest file the session has, as below.
    }
    // A blob an earlier version saved in GridFS only.
    const [newest] = await this.files(sessionId);
    return newest ? this.download(newest._id) : null;
  }

  /** A GridFS file's bytes, or null when there is no such file. */
  private async download(fileId: ObjectId): Promise<Buffer | null> {
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of this.bucket.openDownloadStream(fileId)) chunks.push(chunk as Buffer);
    } catch (err) {
      if (/FileNotFound/i.test((err as Error).message)) return null;
      throw err;
    }
    return Buffer.concat(chunks);
  }

  async save(sessionId: string, plain: Buffer, stamp?: AuthStamp): Promise<void> {
    const blob = this.box ? this.box.seal(plain) : plain;
    const owner = stamp ? { node: stamp.node, epoch: stamp.epoch } : {};
    const meta = { size: blob.length, savedAt: new Date(), ...owner };
    if (blob.length <= INLINE_MAX_BYTES) {
      // One atomic update: the old state until it lands, the new one after.
      await this.write(sessionId, stamp, {
        $set: { data: new Binary(blob), ...meta },
        $unset: { fileId: "" },
      });
      await this.removeFiles(sessionId);
      return;
    }
    // A failed upload leaves no chunk behind (uploadFile deletes them).
    const fileId = await uploadFile(this.bucket, sessionId, blob, { metadata: { size: blob.length } });
    try {
      // The new file is complete: the document now points at it.
      await this.write(sessionId, stamp, { $set: { fileId, ...meta }, $unset: { data: "" } });
    } catch (err) {
      // A write whose answer was lost may have landed: the document points at the new file then, and
      // deleting it would leave a pointer to nothing (every later load failing).
      if (!(await this.pointsAt(sessionId, fileId))) await this.bucket.delete(fileId).catch(() => undefined);
      throw err;
    }
    await this.removeFiles(sessionId, fileId);
  }

  /** Whether the session's document points at `fileId` (true when it cannot be read: kept). */
  private async pointsAt(sessionId: string, fileId: ObjectId): Promise<boolean> {
    const doc = await this.docs
      .findOne({ _id: sessionId }, { projection: { fileId: 1 } })
      .catch(() => undefined);
    return doc === undefined || (doc?.fileId?.equals(fileId) ?? false);
  }

  /** GridFS copies of the session other than `keep` (stale once the document holds or points at another). */
  private async removeFiles(sessionId: string, keep?: ObjectId): Promise<void> {
    for (const f of await this.files(sessionId)) {
      if (!keep?.equals(f._id)) await this.bucket.delete(f._id).catch(() => undefined);
    }
  }

  async delete(sessionId: string, stamp?: AuthStamp): Promise<void> {
    const { deletedCount } = await this.docs.deleteOne(ownedBy(sessionId, stamp));
    if (
      stamp &&
      deletedCount === 0 &&
      (await this.docs.findOne({ _id: sessionId }, { projection: { _id: 1 } }))
    ) {
      throw refused(sessionId, stamp);
    }
    await this.removeFiles(sessionId);
  }

  /**
   * Deletes the state of a session that is gone for good (its account deleted), leaving a marker that
   * refuses every stamped write: an engine its owner could not stop does not store the credentials
   * again at its next save (refused, it is fenced out). The marker reads as no state.
   */
  async retire(sessionId: string): Promise<void> {
    await this.docs.replaceOne(
      { _id: sessionId },
      { node: "", epoch: Number.MAX_SAFE_INTEGER, savedAt: new Date() },
      { upsert: true },
    );
    await this.removeFiles(sessionId);
  }

  async has(sessionId: string): Promise<boolean> {
    const doc = await this.docs.findOne({ _id: sessionId }, { projection: { fileId: 1, size: 1 } });
    if (doc?.fileId || doc?.size !== undefined) return true;
    return (await this.files(sessionId)).length > 0;
  }
}
