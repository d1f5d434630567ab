// On our FerretDB build, which searches an index only for `_id` and plain string equalities, every
// query the outbox's pruning and a recorder's reads of cold queue tails send is searched in an index
// (SQLite's plan names one), rather than going through every row kept: the outbox keeps finished rows
// for WEBHOOK_RETENTION_MS. Against another MongoDB-wire server there is nothing of ours to check.
import { strict as assert } from "node:assert";
import type { CommandStartedEvent, Document, MongoClient } from "mongodb";
import { OutboxRepo } from "../../../src/store/webhook-outbox-repo.ts";
import { ourFerretDb } from "../../support/ferretdb.ts";
import { endpoint, event } from "../../support/outbox-fixtures.ts";

describe("store: the outbox's pruning and cold tails read through indexes on our FerretDB build", () => {
  let client: MongoClient;
  let repo: OutboxRepo;
  /** The filters of the finds and deletes sent to the outbox while `capture.on`. */
  const filters: { command: string; filter: Document }[] = [];
  const capture = { on: false };
  const onCommand = (e: CommandStartedEvent) => {
    if (!capture.on) return;
    if (e.commandName === "find" && e.command.find === repo.col.collectionName)
      filters.push({ command: "find", filter: e.command.filter ?? {} });
    if (e.commandName === "delete" && e.command.delete === repo.col.collectionName)
      for (const d of e.command.deletes as { q: Document }[])
        filters.push({ command: "delete", filter: d.q });
  };

  /** Runs `fn` with the outbox's commands captured (from none). */
  async function capturing<T>(fn: () => Promise<T>): Promise<T> {
    filters.length = 0;
    capture.on = true;
    try {
      return await fn();
    } finally {
      capture.on = false;
    }
  }

  /** Every captured filter is searched in an index (SQLite's plan through FerretDB's explain). */
  async function assertIndexed(): Promise<void> {
    for (const { command, filter } of filters) {
      const explained = (await repo.col.find(filter).explain()) as { queryPlanner: { Plan: string[] } };
      const plan = explained.queryPlanner.Plan.join("\n");
      assert.match(plan, /USING (COVERING )?INDEX/, `${command} ${JSON.stringify(filter)} scans: ${plan}`);
    }
  }

  before(async function () {
    const ours = await ourFerretDb("obx", { monitorCommands: true });
    if (!ours) return this.skip(); // MONGO_URL names another server: not our build
    client = ours;
    client.on("commandStarted", onCommand);
    repo = new OutboxRepo(client.db(), "n1");
    await repo.ensureIndexes();
  });
  after(async () => client?.close());

  it("every find and delete of a prune is searched in an index, and the prune still deletes what it should", async () => {
    const endpoints = [endpoint("wh_a"), endpoint("wh_b")];
    for (const acc of ["acc_1", "acc_2"])
      for (let i = 0; i < 3; i++) await repo.record(event(acc, i), endpoints);
    const rows = await repo.col.find({}).toArray();
    // Every queue: #1 delivered, #2 dead, #3 (its last row) delivered: only #1 and #2 may go.
    await repo.markDelivered(
      rows.filter((r) => r.seq !== 2).map((r) => ({ id: r._id, attempts: 1, statusCode: 200 })),
    );
    for (const r of rows.filter((r) => r.seq === 2))
      await repo.markFailed(r._id, { attempts: 3, error: "HTTP 500", statusCode: 500, nextAttemptAt: null });

    const deleted = await capturing(() => repo.prune(new Date(Date.now() + 1000)));
    assert.equal(deleted, 8, "rows #1 and #2 of 4 queues");
    assert.deepEqual(
      (await repo.col.find({}).toArray()).map((r) => r.seq),
      [3, 3, 3, 3],
      "each queue's last row stays",
    );
    assert.ok(
      filters.some((f) => f.command === "delete"),
      "the prune deleted through its own filters",
    );
    await assertIndexed();
    await repo.col.deleteMany({});
  });

  it("a recorder's first run reads each cold queue's tail through the index, and records after it", async () => {
    const endpoints = [endpoint("wh_c"), endpoint("wh_d")];
    const accounts = ["acc_5", "acc_6", "acc_7"];
    for (const acc of accounts) await repo.record(event(acc, 0), endpoints);
    // A node that has written none of these queues: every tail is cold.
    const other = new OutboxRepo(client.db(), "n2");
    await capturing(() => other.recordMany(accounts.map((acc) => ({ ev: event(acc, 1), endpoints }))));
    for (const e of endpoints)
      for (const acc of accounts) {
        const rows = await repo.col.find({ endpointId: e._id, accountId: acc }).sort({ seq: 1 }).toArray();
        assert.deepEqual(
          rows.map((r) => [r.seq, r.eventId]),
          [
            [1, `evt_${acc}_0`],
            [2, `evt_${acc}_1`],
          ],
        );
      }
    assert.ok(filters.length >= 1, "the cold tails were read");
    await assertIndexed();
    await repo.col.deleteMany({});
  });
});
