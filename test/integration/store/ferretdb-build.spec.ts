// The FerretDB we build (tools/ferretdb/patches.mjs) looks documents up by `_id` through the `_id`
// index, also when the filter holds more than `_id` (every fenced write) or `_id` is `$in` a list (marks
// written in batches), and still applies the whole filter; concurrent writes queue for their turn and all land. Against another MongoDB-wire server (MONGO_URL) there is nothing of ours to check.
import { strict as assert } from "node:assert";
import { MongoBulkWriteError, type Collection, type MongoClient } from "mongodb";
import { ourFerretDb } from "../../support/ferretdb.ts";

interface Doc {
  _id: string;
  workspaceId: string;
  node: string;
  epoch: number;
  status?: string;
}

describe("store: the FerretDB build serves `_id` lookups from its index", () => {
  let client: MongoClient;
  let col: Collection<Doc>;

  before(async function () {
    const ours = await ourFerretDb("fdb");
    if (!ours) return this.skip(); // MONGO_URL names another server: not our build
    client = ours;
    col = client.db().collection<Doc>("lookups");
    await col.insertMany(
      Array.from({ length: 200 }, (_, i) => ({
        _id: `acc_${i}`,
        workspaceId: `w${i % 7}`,
        node: "n1",
        epoch: 1,
      })),
    );
  });
  after(async () => client?.close());

  /** SQLite's plan for `filter`, as FerretDB's explain reports it. */
  async function plan(filter: Record<string, unknown>): Promise<string> {
    const explained = (await col.find(filter as Partial<Doc>).explain()) as {
      queryPlanner: { Plan: string[] };
      filterPushdown: boolean;
    };
    assert.equal(explained.filterPushdown, true, `no pushdown for ${JSON.stringify(filter)}`);
    return explained.queryPlanner.Plan.join("\n");
  }

  it("finds by `_id` alone through the `_id` index", async () => {
    assert.match(await plan({ _id: "acc_5" }), /USING INDEX \S+__id_/);
  });

  it("narrows a fenced filter `{_id, node, epoch}` by the index too", async () => {
    assert.match(await plan({ _id: "acc_5", node: "n1", epoch: 1 }), /USING INDEX \S+__id_/);
  });

  it("still applies the rest of the filter: a wrong fence or workspace matches nothing", async () => {
    assert.equal(
      (await col.updateOne({ _id: "acc_5", node: "n2", epoch: 1 }, { $set: { status: "x" } })).matchedCount,
      0,
    );
    assert.equal(
      (await col.updateOne({ _id: "acc_5", node: "n1", epoch: 2 }, { $set: { status: "x" } })).matchedCount,
      0,
    );
    assert.equal((await col.deleteOne({ _id: "acc_6", workspaceId: "w0" })).deletedCount, 0);
    assert.equal(await col.countDocuments({ _id: "acc_6", workspaceId: "w0" }), 0);
    const res = await col.updateOne(
      { _id: "acc_5", node: "n1", epoch: 1 },
      { $set: { status: "connected" } },
    );
    assert.equal(res.matchedCount, 1);
    assert.deepEqual(await col.findOne({ _id: "acc_5", workspaceId: "w5" }), {
      _id: "acc_5",
      workspaceId: "w5",
      node: "n1",
      epoch: 1,
      status: "connected",
    });
    assert.equal(await col.countDocuments({ status: "connected" }), 1, "no other document was touched");
  });

  it("applies 100 concurrent inserts and fenced updates, each exactly once (writes take turns)", async () => {
    const ids = Array.from({ length: 100 }, (_, i) => `burst_${i}`);
    await Promise.all(ids.map((_id) => col.insertOne({ _id, workspaceId: "wb", node: "n1", epoch: 1 })));
    const results = await Promise.all(
      ids.map((_id, i) =>
        col.updateOne({ _id, node: "n1", epoch: i % 2 === 0 ? 1 : 9 }, { $set: { status: "connected" } }),
      ),
    );
    assert.deepEqual(
      results.map((r) => r.matchedCount),
      ids.map((_, i) => (i % 2 === 0 ? 1 : 0)),
    );
    assert.equal(await col.countDocuments({ workspaceId: "wb" }), 100);
    assert.equal(await col.countDocuments({ workspaceId: "wb", status: "connected" }), 50);
  });

  it("narrows `_id` $in a list of strings by the index, and still applies the rest of the filter", async () => {
    assert.match(await plan({ _id: { $in: ["acc_1", "acc_2"] } }), /USING INDEX \S+__id_/);
    const ids = { _id: { $in: ["acc_1", "acc_2", "nobody"] }, workspaceId: "w1" };
    assert.deepEqual(
      (await col.find(ids).toArray()).map((d) => d._id),
      ["acc_1"],
    );
    const res = await col.updateMany(
      { _id: { $in: ["acc_10", "acc_11", "acc_12"] }, epoch: 1 },
      { $set: { status: "marked" } },
    );
    assert.equal(res.modifiedCount, 3);
    assert.deepEqual(
      (await col.find({ status: "marked" }).toArray()).map((d) => d._id).sort(),
      ["acc_10", "acc_11", "acc_12"],
      "exactly the listed documents",
    );
    await col.updateMany({ status: "marked" }, { $unset: { status: "" } });
  });

  it("leaves other filters to the full match, with the same answers", async () => {
    // `$in` with values that are not strings, an empty `$in`, `$nin`, `$or`: no narrowing.
    assert.equal(await col.countDocuments({ _id: { $in: [5, "acc_7"] as unknown as string[] } }), 1);
    assert.equal(await col.countDocuments({ _id: { $in: [] } }), 0);
    assert.equal(await col.countDocuments({ _id: { $nin: ["acc_1"] }, workspaceId: "w1" }), 28);
    assert.equal(await col.countDocuments({ $or: [{ _id: "acc_3" }, { _id: "acc_4" }] }), 2);
  });
});

// Top-level string equalities select rows in SQL first (a field holding that string, or an array);
// the full filter still decides. What that saves is measured in isolation (bench/results/NOTES.md);
// here, that every answer stays MongoDB's.
describe("store: the FerretDB build narrows string equalities in SQL, with MongoDB's answers", () => {
  let client: MongoClient;
  let col: Collection<{ _id: string; tag?: unknown; other?: string }>;
  const special = 'q"uo\\te ü ✓ \u0001';

  before(async function () {
    const ours = await ourFerretDb("fdq");
    if (!ours) return this.skip(); // MONGO_URL names another server: not our build
    client = ours;
    col = client.db().collection("equalities");
    await col.insertMany([
      { _id: "str", tag: "x" },
      { _id: "arr", tag: ["y", "x"] },
      { _id: "arrNo", tag: ["y"] },
      { _id: "arrDoc", tag: [{ x: "x" }] },
      { _id: "doc", tag: { x: 1 } },
      { _id: "num", tag: 5 },
      { _id: "none" },
      { _id: "special", tag: special },
      { _id: "both", tag: "x", other: "k" },
    ]);
  });
  after(async () => client?.close());

  const ids = async (filter: Record<string, unknown>) =>
    (await col.find(filter).toArray()).map((d) => d._id).sort();

  it("a string matches the field equal to it or an array holding it, nothing else", async () => {
    assert.deepEqual(await ids({ tag: "x" }), ["arr", "both", "str"]);
    assert.deepEqual(await ids({ tag: special }), ["special"]);
    assert.deepEqual(await ids({ tag: "5" }), []);
    assert.deepEqual(await ids({ tag: "y" }), ["arr", "arrNo"]);
  });

  it("several equalities, `_id`, operators and dotted paths keep their meaning", async () => {
    assert.deepEqual(await ids({ tag: "x", other: "k" }), ["both"]);
    assert.deepEqual(await ids({ tag: "x", other: "nope" }), []);
    assert.deepEqual(await ids({ tag: "x", _id: "arr" }), ["arr"]);
    assert.deepEqual(await ids({ tag: 5 }), ["num"]);
    assert.deepEqual(await ids({ "tag.x": 1 }), ["doc"]);
    assert.deepEqual(await ids({ tag: { $in: ["x", 5] } }), ["arr", "both", "num", "str"]);
    assert.deepEqual(await ids({ tag: "x", $or: [{ _id: "str" }, { other: "k" }] }), ["both", "str"]);
  });

  it("with an index on the field, a plain string is searched in it, and the answers stay the same", async () => {
    await col.insertMany([
      { _id: "plain", tag: "wh_1:a-b.c@d/e+f=g" },
      { _id: "plainArr", tag: ["q", "wh_1:a-b.c@d/e+f=g"] },
      { _id: "quoted", tag: '"x"' },
    ]);
    await col.createIndex({ tag: 1 });
    try {
      const explained = (await col.find({ tag: "x" }).explain()) as { queryPlanner: { Plan: string[] } };
      assert.match(explained.queryPlanner.Plan.join("\n"), /USING INDEX \S+_tag_1/);
      assert.deepEqual(await ids({ tag: "x" }), ["arr", "both", "str"]);
      assert.deepEqual(await ids({ tag: "wh_1:a-b.c@d/e+f=g" }), ["plain", "plainArr"]);
      assert.deepEqual(await ids({ tag: '"x"' }), ["quoted"], "a string with quotes is not a plain one");
      assert.deepEqual(await ids({ tag: special }), ["special"]);
      assert.deepEqual(await ids({ tag: "5" }), []);
      assert.deepEqual(await ids({ tag: "x", other: "k" }), ["both"]);
    } finally {
      await col.dropIndex("tag_1");
      await col.deleteMany({ _id: { $in: ["plain", "plainArr", "quoted"] } });
    }
  });

  it("counts, updates and deletes by a string equality touch exactly the matching documents", async () => {
    assert.equal(await col.countDocuments({ tag: "x" }), 3);
    assert.equal((await col.updateMany({ tag: "x" }, { $set: { other: "seen" } })).modifiedCount, 3);
    assert.deepEqual(await ids({ other: "seen" }), ["arr", "both", "str"]);
    assert.equal((await col.deleteMany({ tag: "y", other: "seen" })).deletedCount, 1);
    assert.deepEqual(await ids({ tag: "y" }), ["arrNo"]);
  });
});

// An update of many documents writes them 100 to a transaction; what it answers and leaves behind stays
// MongoDB's, also when it fails part way.
describe("store: the FerretDB build writes an update of many documents in batches, with MongoDB's answers", () => {
  let client: MongoClient;
  let col: Collection<{ _id: string; n: number; marked?: boolean }>;
  const id = (i: number) => `row_${String(i).padStart(3, "0")}`;

  before(async function () {
    const ours = await ourFerretDb("fdu");
    if (!ours) return this.skip(); // MONGO_URL names another server: not our build
    client = ours;
    col = client.db().collection("batches");
  });
  beforeEach(async () => {
    await col.deleteMany({});
    await col.insertMany(Array.from({ length: 250 }, (_, i) => ({ _id: id(i), n: i })));
  });
  after(async () => client?.close());

  it("modifies every matching document across batches, and counts each once", async () => {
    const res = await col.updateMany({ n: { $gte: 20 } }, { $set: { marked: true } });
    assert.equal(res.matchedCount, 230);
    assert.equal(res.modifiedCount, 230);
    assert.equal(await col.countDocuments({ marked: true }), 230);
    assert.equal(await col.countDocuments({ marked: true, n: { $lt: 20 } }), 0);
    const again = await col.updateMany({ n: { $gte: 20 } }, { $set: { marked: true } });
    assert.equal(again.modifiedCount, 0, "documents already so are matched, not modified");
  });

  it("a document that cannot be updated part way fails the update; those before it stay updated", async () => {
    // A string where $inc needs a number.
    await col.updateOne({ _id: id(150) }, { $set: { n: "not a number" as unknown as number } });
    await assert.rejects(col.updateMany({}, { $inc: { n: 1 } }), /Cannot apply \$inc/);
    const docs = await col.find({}).sort({ _id: 1 }).toArray();
    assert.deepEqual(
      docs.slice(0, 150).map((d) => d.n),
      Array.from({ length: 150 }, (_, i) => i + 1),
      "the 150 before the failing one were written (100 in a batch, 50 waiting)",
    );
    assert.deepEqual(
      docs.slice(150).map((d) => d.n),
      ["not a number", ...Array.from({ length: 99 }, (_, i) => i + 151)],
      "the failing one and those after it are untouched",
    );
  });

  it("updateOne and findOneAndUpdate still write their one document", async () => {
    assert.equal((await col.updateOne({ n: 7 }, { $set: { marked: true } })).modifiedCount, 1);
    const found = await col.findOneAndUpdate({ n: 8 }, { $set: { n: 1000 } }, { returnDocument: "after" });
    assert.equal(found?.n, 1000);
    assert.deepEqual(
      (await col.find({ $or: [{ marked: true }, { n: 1000 }] }).toArray()).map((d) => d._id).sort(),
      [id(7), id(8)],
    );
  });
});

// An ordered insert runs in batches of 100 on FerretDB; it must stop at its first refused document
// across batches too, as MongoDB's does (src/store/mongo.ts `insertedInOrder` relies on the answer).
describe("store: the FerretDB build stops an ordered insert at its first refused document", () => {
  let client: MongoClient;
  let col: Collection<{ _id: string; n: number }>;

  before(async function () {
    const ours = await ourFerretDb("fdi");
    if (!ours) return this.skip(); // MONGO_URL names another server: not our build
    client = ours;
    col = client.db().collection("ordered");
  });
  after(async () => client?.close());

  it("refuses the duplicate in the second batch, and inserts nothing after it", async () => {
    await col.insertOne({ _id: "doc_150", n: -1 });
    const docs = Array.from({ length: 250 }, (_, i) => ({ _id: `doc_${i}`, n: i }));
    const err = (await col
      .insertMany(docs, { ordered: true })
      .catch((e: unknown) => e)) as MongoBulkWriteError;
    assert.ok(err instanceof MongoBulkWriteError, `expected a bulk write error, got ${String(err)}`);
    assert.equal(err.insertedCount, 150);
    assert.deepEqual(
      [err.writeErrors].flat().map((e) => [e.index, e.code]),
      [[150, 11000]],
    );
    assert.equal(await col.countDocuments({}), 151, "the 150 before it, and the one it collided with");
    assert.equal(await col.countDocuments({ n: { $gt: 150 } }), 0, "nothing after the refused one");
  });
});
