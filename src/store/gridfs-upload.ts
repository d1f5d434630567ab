// One GridFS upload that leaves nothing behind when it fails: the driver deletes no chunk of a failed
// upload, and no file document names them, so nothing (a prune looks for file documents) would ever
// find them.
import type { GridFSBucket, GridFSBucketWriteStreamOptions, ObjectId } from "mongodb";

/** Stores `data` as one file named `filename`; resolves with its id. On failure the chunks written so
 * far are deleted (that deletion failing too is let go) and the upload's error is passed on. */
export async function uploadFile(
  bucket: GridFSBucket,
  filename: string,
  data: Buffer,
  options?: GridFSBucketWriteStreamOptions,
): Promise<ObjectId> {
  const upload = bucket.openUploadStream(filename, options);
  try {
    await new Promise<void>((resolve, reject) => {
      upload.once("error", reject);
      upload.once("finish", () => resolve());
      // One chunk per write. The stream inserts all the chunks of a write at once and fails at the
      // first refused, the others still in flight: they would land after the deletion below. It takes
      // the next write only once the last one's insert is in, so no insert outlives a failure.
      const size = upload.chunkSizeBytes;
      for (let at = 0; at < data.length; at += size) upload.write(data.subarray(at, at + size));
      upload.end();
    });
  } catch (err) {
    await bucket.delete(upload.id).catch(() => undefined);
    throw err;
  }
  return upload.id;
}
