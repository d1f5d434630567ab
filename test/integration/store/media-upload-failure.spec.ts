// A media upload that fails midway (a chunk's insert refused) leaves no chunk behind, in either media
// bucket: the driver deletes none, no file document names them, and so no prune would ever find them.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { MongoClient, type Db, type ObjectId } from "mongodb";
import { INCOMING_MEDIA_BUCKET, IncomingMediaStore } from "../../../src/store/incoming-media.ts";
import { OUTBOUND_MEDIA_BUCKET, OutboundMediaStore } from "../../../src/store/outbound-media.ts";
import { mongoUrlFor } from "../../support/env.ts";
import { CHUNK_BYTES, failChunk } from "../../support/fail-chunk.ts";

describe("store: a failed media upload leaves no chunks", () => {
  let client: MongoClient;
  let db: Db;
  const chunksOf = (bucket: string, id: ObjectId) =>
    db.collection(`${bucket}.chunks`).countDocuments({ files_id: id });

  before(async () => {
    client = await MongoClient.connect(mongoUrlFor(`media${randomBytes(3).toString("hex")}`));
    db = client.db();
  });
  after(async () => {
    await db.dropDatabase();
    await client.close();
  });

  it("outbound media: a put whose second chunk is refused rejects, and leaves none of its chunks", async () => {
    const store = new OutboundMediaStore(db);
    const stub = failChunk(OUTBOUND_MEDIA_BUCKET, 2);
    try {
      await assert.rejects(store.put(randomBytes(4 * CHUNK_BYTES + 100)), /database is locked/);
    } finally {
      stub.restore();
    }
    assert.equal(await chunksOf(OUTBOUND_MEDIA_BUCKET, await stub.settled()), 0);
    // Uploads that do not fail keep every byte (the last chunk a short one).
    const data = randomBytes(3 * CHUNK_BYTES + 100);
    assert.ok((await store.get(await store.put(data)))?.equals(data));
  });

  it("incoming media: a put whose second chunk is refused rejects, and leaves none of its chunks", async () => {
    const store = new IncomingMediaStore(db, 60_000);
    const meta = {
      workspaceId: "ws",
      accountId: "acc",
      messageId: "m1",
      mimetype: "image/png",
      filename: null,
    };
    const stub = failChunk(INCOMING_MEDIA_BUCKET, 2);
    try {
      await assert.rejects(store.put(meta, randomBytes(4 * CHUNK_BYTES + 100)), /database is locked/);
    } finally {
      stub.restore();
    }
    assert.equal(await chunksOf(INCOMING_MEDIA_BUCKET, await stub.settled()), 0);
    assert.equal(await store.countOf("acc"), 0, "no file either");
  });
});
