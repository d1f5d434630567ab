// The accounts quota's tally on the real MongoDB-wire server: creates racing through several
// connections (as through several gateways) stop exactly at the quota, deletes count out, and a
// database with accounts from before tallies has them counted once.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { MongoClient, type Db } from "mongodb";
import { AccountTally } from "../../../src/quotas.ts";
import { AccountsRepo } from "../../../src/store/accounts-repo.ts";
import { EventsRepo } from "../../../src/store/events-repo.ts";
import { COLLECTIONS, ensureIndexes } from "../../../src/store/mongo.ts";
import { TallyRepo, tallyId, TALLIES_COLLECTION } from "../../../src/store/tally-repo.ts";
import { mongoUrlFor } from "../../support/env.ts";

describe("store/tally-repo: the accounts quota's tally on the real server", () => {
  let url: string;
  const clients: MongoClient[] = [];
  let db: Db;

  /** A node of its own: its own connection, repos and tally. */
  async function node(): Promise<{ tally: AccountTally; repo: TallyRepo }> {
    const client = await MongoClient.connect(url);
    clients.push(client);
    const repo = new TallyRepo(client.db());
    const accounts = new AccountsRepo(client.db());
    return { repo, tally: new AccountTally(repo, (ws) => accounts.countIn(ws)) };
  }

  async function lastCount(ws: string): Promise<number> {
    const docs = await db
      .collection<{ _id: string; seq: number; n: number }>(TALLIES_COLLECTION)
      .find({ workspaceId: ws })
      .toArray();
    const seqs = docs.map((d) => d.seq).sort((a, b) => a - b);
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => i + 1),
      "versions without gaps or doubles",
    );
    return docs.find((d) => d.seq === seqs.length)?.n ?? 0;
  }

  before(async () => {
    url = mongoUrlFor(`tally${randomBytes(3).toString("hex")}`);
    const client = await MongoClient.connect(url);
    clients.push(client);
    db = client.db();
    await ensureIndexes(db);
  });
  after(async () => Promise.all(clients.map((c) => c.close())));

  it("counts the accounts of a database from before tallies once, then only what changes", async () => {
    const now = new Date();
    await db.collection(COLLECTIONS.accounts).insertMany(
      ["old", "old", "old", "older"].map((workspaceId, i) => ({
        _id: `acc_seed${i}` as never,
        workspaceId,
        sessionId: `simulated_${workspaceId}_seed${i}`,
        createdAt: now,
      })),
    );
    const [a, b] = await Promise.all([node(), node()]);
    // Two nodes starting together both seed: one version each, whoever wrote it.
    await Promise.all([a.repo.seedOnce(), b.repo.seedOnce()]);
    assert.equal(await lastCount("old"), 3);
    assert.equal(await lastCount("older"), 1);
    await db.collection(COLLECTIONS.accounts).insertOne({ _id: "acc_seed9" as never, workspaceId: "old" });
    await a.repo.seedOnce();
    assert.equal(await lastCount("old"), 3, "seeded once per database");

    await assert.rejects(a.tally.reserve("older", 1), { type: "QUOTA_EXCEEDED" });
    await a.tally.reserve("old", 5);
    await b.tally.reserve("new", 5);
    assert.deepEqual([await lastCount("old"), await lastCount("new")], [4, 1]);
  });

  it("a workspace whose event log was pruned has a tally, so its next account is not its first", async () => {
    // A log pruned when the workspace had no accounts left, from before tallies: only its head tells.
    const events = new EventsRepo(db);
    for (let i = 0; i < 3; i++) await events.append("pruned", "account.message", { workspaceId: "pruned" });
    await events.prune(new Date(Date.now() + 1000));
    await db.collection(TALLIES_COLLECTION).deleteOne({ _id: "~seeded:heads" as never }); // as before seeding
    const { repo, tally } = await node();
    await repo.seedOnce();
    assert.equal(await lastCount("pruned"), 0);
    assert.equal(await tally.reserve("pruned", 0), false, "not the workspace's first account");
    assert.equal(await lastCount("pruned"), 1);
  });

  it("creates racing through three nodes stop exactly at the quota; deletes count out on any node", async () => {
    const nodes = await Promise.all([node(), node(), node()]);
    const settled = await Promise.allSettled(
      Array.from({ length: 30 }, (_, i) => nodes[i % 3].tally.reserve("race", 10)),
    );
    const refused = settled.filter((s) => s.status === "rejected");
    for (const r of refused) assert.equal((r.reason as { type?: string }).type, "QUOTA_EXCEEDED");
    assert.equal(settled.length - refused.length, 10);
    assert.equal(await lastCount("race"), 10);

    await Promise.all([nodes[0].tally.removed("race"), nodes[1].tally.removed("race")]);
    assert.equal(await lastCount("race"), 8);
    const again = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) => nodes[i % 3].tally.reserve("race", 10)),
    );
    assert.equal(again.filter((s) => s.status === "fulfilled").length, 2);
    assert.equal(await lastCount("race"), 10);
  });

  it("a version is written once: a second write of it is refused", async () => {
    const { repo } = await node();
    assert.equal(await repo.write("once", 1, 1, 1), true);
    assert.equal(await repo.write("once", 1, 7, 1), false);
    assert.equal(await repo.read("once", 1), 1);
    assert.equal(await repo.read("once", 2), null);
    assert.equal(tallyId("once", 1) < tallyId("once", 10), true);
  });
});
