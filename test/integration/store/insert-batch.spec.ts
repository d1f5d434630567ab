// Group commit (src/store/insert-batch.ts) on the real MongoDB-wire server: each caller gets its own
// answer, also when the server answered a transient error after the documents had landed.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { MongoClient, type Collection } from "mongodb";
import { InsertBatcher } from "../../../src/store/insert-batch.ts";
import { isDuplicateKey } from "../../../src/store/mongo.ts";
import { mongoUrlFor } from "../../support/env.ts";

interface Doc {
  _id: string;
  n: number;
  w?: string;
}

/** Each caller's answer: "ok", "dup" (refused as a duplicate key), or the error. */
const outcomes = (results: PromiseSettledResult<void>[]) =>
  results.map((r) => (r.status === "fulfilled" ? "ok" : isDuplicateKey(r.reason) ? "dup" : r.reason));

describe("store/insert-batch: group commit", function () {
  this.timeout(30000);
  let client: MongoClient;
  let col: Collection<Doc>;

  beforeEach(async () => {
    client = await MongoClient.connect(mongoUrlFor(`batch${randomBytes(3).toString("hex")}`));
    col = client.db().collection<Doc>("docs");
  });
  afterEach(async () => {
    await client.db().dropDatabase();
    await client.close();
  });

  /** Every write's first try lands, then answers FerretDB's "database is locked". */
  function landThenFail(): void {
    const real = col.insertMany.bind(col);
    const seen = new Set<string>();
    (col as any).insertMany = async (docs: Doc[], options: any) => {
      const first = !seen.has(docs[0].w!);
      seen.add(docs[0].w!);
      if (!first) return real(docs, options);
      await real(docs, options).catch(() => undefined);
      throw new Error("database is locked");
    };
  }

  it("answers each caller: inserted, or refused as a duplicate", async () => {
    await col.insertOne({ _id: "taken", n: 0 });
    const batcher = new InsertBatcher(col);
    const results = await Promise.allSettled(
      ["a", "b", "taken", "c"].map((id, n) => batcher.insert({ _id: id, n })),
    );
    assert.deepEqual(outcomes(results), ["ok", "ok", "dup", "ok"]);
    assert.equal(await col.countDocuments(), 4);
  });

  it("a write whose documents landed before a transient error is not refused its own documents", async () => {
    await col.insertOne({ _id: "taken", n: 0 });
    landThenFail();
    const batcher = new InsertBatcher(col);
    // The first goes alone, the other three together: both writes land, fail and are tried again.
    const results = await Promise.allSettled(
      ["a", "b", "taken", "c"].map((id, n) => batcher.insert({ _id: id, n })),
    );
    assert.deepEqual(
      outcomes(results),
      ["ok", "ok", "dup", "ok"],
      "the documents of the first try are this caller's; the one another writer holds is refused",
    );
    const stored = await col.find({}, { sort: { _id: 1 } }).toArray();
    assert.deepEqual(
      stored.map((d) => [d._id, d.n]),
      [
        ["a", 0],
        ["b", 1],
        ["c", 3],
        ["taken", 0],
      ],
    );
  });

  it("two documents with one _id in a write: the second is refused, also when the write is tried again", async () => {
    landThenFail();
    const batcher = new InsertBatcher(col);
    // "a" goes alone; the rest together, twice "x": both would carry the write's token.
    const results = await Promise.allSettled(
      [
        ["a", 0],
        ["x", 1],
        ["b", 2],
        ["x", 3],
      ].map(([id, n]) => batcher.insert({ _id: id as string, n: n as number })),
    );
    assert.deepEqual(outcomes(results), ["ok", "ok", "ok", "dup"]);
    assert.equal((await col.findOne({ _id: "x" }))?.n, 1);
  });
});
