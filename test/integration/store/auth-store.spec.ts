// The AuthStore on the real MongoDB-wire server: small blobs inline (one document by `_id`), large ones
// in GridFS, blobs saved by earlier versions (GridFS only) still readable, and a save that changes the
// place leaves exactly one readable copy.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { GridFSBucket, MongoClient, type Db } from "mongodb";
import { GridFsAuthStore, INLINE_MAX_BYTES } from "../../../src/store/auth-store.ts";
import { mongoUrlFor } from "../../support/env.ts";

describe("store/auth-store: inline and GridFS blobs on the real server", () => {
  let client: MongoClient;
  let db: Db;
  let store: GridFsAuthStore;
  const gridFiles = (id: string) =>
    new GridFSBucket(db, { bucketName: "auth_state" }).find({ filename: id }).toArray();
  const inlineDoc = (id: string) => db.collection<{ _id: string }>("auth_state.inline").findOne({ _id: id });

  before(async () => {
    client = await MongoClient.connect(mongoUrlFor(`auth${randomBytes(3).toString("hex")}`));
    db = client.db();
    store = new GridFsAuthStore(db);
  });
  after(async () => client.close());

  it("keeps a small blob in one document, replaced by the next save, gone after delete", async () => {
    assert.equal(await store.load("s1"), null);
    assert.equal(await store.has("s1"), false);
    const a = randomBytes(300);
    await store.save("s1", a);
    assert.ok((await store.load("s1"))!.equals(a));
    assert.ok(await inlineDoc("s1"));
    assert.equal((await gridFiles("s1")).length, 0);
    const b = randomBytes(500);
    await store.save("s1", b);
    assert.ok((await store.load("s1"))!.equals(b));
    assert.equal(await store.has("s1"), true);
    await store.delete("s1");
    assert.equal(await store.load("s1"), null);
    assert.equal(await store.has("s1"), false);
  });

  it("keeps a large blob in GridFS; moving between the two leaves one copy", async () => {
    const big = randomBytes(INLINE_MAX_BYTES + 1);
    await store.save("s2", randomBytes(100));
    await store.save("s2", big);
    assert.equal(await inlineDoc("s2"), null, "the inline copy went once the GridFS one was complete");
    assert.equal((await gridFiles("s2")).length, 1);
    assert.ok((await store.load("s2"))!.equals(big));
    const small = randomBytes(200);
    await store.save("s2", small);
    assert.equal((await gridFiles("s2")).length, 0, "stale GridFS copies removed");
    assert.ok((await store.load("s2"))!.equals(small));
    await store.delete("s2");
    assert.equal(await store.has("s2"), false);
  });

  it("reads a blob an earlier version saved in GridFS only", async () => {
    const legacy = randomBytes(400);
    const upload = new GridFSBucket(db, { bucketName: "auth_state" }).openUploadStream("s3");
    await new Promise<void>((resolve, reject) => {
      upload.once("error", reject);
      upload.once("finish", () => resolve());
      upload.end(legacy);
    });
    assert.equal(await store.has("s3"), true);
    assert.ok((await store.load("s3"))!.equals(legacy));
    await store.delete("s3");
    assert.equal(await store.load("s3"), null);
  });
});
