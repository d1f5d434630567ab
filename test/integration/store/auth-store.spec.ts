// The AuthStore on the real MongoDB-wire server: small blobs inline (one document by `_id`), large ones
// in GridFS, blobs saved by earlier versions (GridFS only) still readable, and a save that changes the
// place leaves exactly one readable copy.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { GridFSBucket, MongoClient, ObjectId, type Db } from "mongodb";
import { NotOwnerError } from "../../../src/errors.ts";
import { GridFsAuthStore, INLINE_MAX_BYTES } from "../../../src/store/auth-store.ts";
import { landThenLoseAnswer } from "../../support/answer-lost.ts";
import { mongoUrlFor } from "../../support/env.ts";
import { failChunk } from "../../support/fail-chunk.ts";

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
    const doc = (await inlineDoc("s2")) as { data?: unknown; fileId?: unknown } | null;
    assert.equal(doc?.data, undefined, "the inline copy went once the GridFS one was complete");
    assert.equal((await gridFiles("s2")).length, 1);
    assert.ok((await gridFiles("s2"))[0]._id.equals(doc?.fileId as never), "the document points at the file");
    assert.ok((await store.load("s2"))!.equals(big));
    const small = randomBytes(200);
    await store.save("s2", small);
    assert.equal((await gridFiles("s2")).length, 0, "stale GridFS copies removed");
    assert.ok((await store.load("s2"))!.equals(small));
    await store.delete("s2");
    assert.equal(await store.has("s2"), false);
  });

  it("a GridFS save whose pointer write landed with its answer lost keeps its file: the state loads", async () => {
    const first = randomBytes(INLINE_MAX_BYTES + 10);
    const second = randomBytes(INLINE_MAX_BYTES + 20);
    await store.save("s_lost", first);
    const docs = (store as unknown as { docs: object }).docs;
    const restore = landThenLoseAnswer(
      docs as { findOneAndUpdate: () => Promise<unknown> },
      "findOneAndUpdate",
    );
    try {
      await assert.rejects(store.save("s_lost", second), /database is locked/);
    } finally {
      restore();
    }
    const loaded = await store.load("s_lost");
    assert.ok(loaded?.equals(second), "the state the landed write points at");
  });

  it("a GridFS save whose upload fails midway leaves none of its chunks, and the earlier state", async () => {
    const first = randomBytes(INLINE_MAX_BYTES + 10);
    await store.save("s_cut", first);
    const stub = failChunk("auth_state", 2);
    try {
      await assert.rejects(store.save("s_cut", randomBytes(INLINE_MAX_BYTES + 20)), /database is locked/);
    } finally {
      stub.restore();
    }
    const chunks = db.collection("auth_state.chunks");
    assert.equal(await chunks.countDocuments({ files_id: await stub.settled() }), 0);
    assert.ok((await store.load("s_cut"))?.equals(first));
  });

  it("a document pointing at a file that is gone loads the newest file the session has", async () => {
    const blob = randomBytes(INLINE_MAX_BYTES + 30);
    await store.save("s_gone", blob);
    await db
      .collection<{ _id: string; fileId?: unknown }>("auth_state.inline")
      .updateOne({ _id: "s_gone" }, { $set: { fileId: new ObjectId() } });
    assert.ok((await store.load("s_gone"))?.equals(blob));
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

  describe("fenced by the owner's {node, epoch}", () => {
    const old = { node: "w1", epoch: 3 };
    const next = { node: "w2", epoch: 4 };

    it("a fenced-out node's save does not change the stored state, inline or in GridFS", async () => {
      const first = randomBytes(300);
      await store.save("f1", first, old);
      assert.ok(
        (await store.load("f1", next))!.equals(first),
        "the new owner restores the old owner's state",
      );
      for (const blob of [randomBytes(200), randomBytes(INLINE_MAX_BYTES + 1)]) {
        await assert.rejects(store.save("f1", blob, old), NotOwnerError);
        assert.ok((await store.load("f1"))!.equals(first), "the stored state is unchanged");
      }
      assert.equal((await gridFiles("f1")).length, 0, "a refused large save leaves no GridFS file");
      const mine = randomBytes(INLINE_MAX_BYTES + 10);
      await store.save("f1", mine, next);
      assert.ok((await store.load("f1", next))!.equals(mine));
      await assert.rejects(store.delete("f1", old), NotOwnerError);
      assert.ok((await store.load("f1"))!.equals(mine), "a fenced-out delete removes nothing");
      await store.delete("f1", next);
      assert.equal(await store.has("f1"), false);
      assert.equal((await gridFiles("f1")).length, 0);
    });

    it("a stamped load of a never-saved session records its owner, so an older owner's first save is refused", async () => {
      assert.equal(await store.load("f2", next), null);
      assert.equal(await store.has("f2"), false, "recording the owner stores no state");
      await assert.rejects(store.load("f2", old), NotOwnerError);
      await assert.rejects(store.save("f2", randomBytes(100), old), NotOwnerError);
      assert.equal(await store.load("f2"), null);
      const blob = randomBytes(100);
      await store.save("f2", blob, { node: "w3", epoch: 5 });
      assert.ok((await store.load("f2"))!.equals(blob));
      await store.delete("f2");
    });

    it("a retired session (its account deleted) reads as no state and refuses every stamped write", async () => {
      await store.save("r1", randomBytes(300), { node: "n1", epoch: 4 });
      await store.save("r2", randomBytes(INLINE_MAX_BYTES + 10), { node: "n1", epoch: 4 });
      for (const id of ["r1", "r2"]) {
        await store.retire(id);
        assert.equal(await store.load(id), null);
        assert.equal(await store.has(id), false);
        assert.deepEqual(await gridFiles(id), []);
        // The engine nobody could stop saves again, at its epoch or any later one: refused.
        await assert.rejects(store.save(id, randomBytes(300), { node: "n1", epoch: 4 }), NotOwnerError);
        await assert.rejects(store.save(id, randomBytes(300), { node: "n2", epoch: 99 }), NotOwnerError);
        await assert.rejects(
          store.save(id, randomBytes(INLINE_MAX_BYTES + 10), { node: "n1", epoch: 5 }),
          NotOwnerError,
        );
        assert.equal(await store.has(id), false);
        assert.deepEqual(await gridFiles(id), []);
      }
    });

    it("saves racing from two owners: only the newer owner's state remains", async () => {
      await store.load("f3", next);
      const mine = randomBytes(400);
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) =>
          store.save("f3", i % 2 ? mine : randomBytes(400), i % 2 ? next : old),
        ),
      );
      assert.equal(results.filter((r) => r.status === "rejected").length, 5);
      assert.ok((await store.load("f3"))!.equals(mine));
      await store.delete("f3");
    });
  });
});
