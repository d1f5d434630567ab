// The queue tails a recorder keeps (src/store/webhook-outbox-recorder.ts) on the real MongoDB-wire
// server: one per queue recorded for, forgotten once older than `maxTailAgeMs`, so recording for ever
// new accounts keeps a bounded number; a queue whose tail was forgotten goes on after its last row.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { MongoClient, type Db } from "mongodb";
import { OutboxRecorder } from "../../../src/store/webhook-outbox-recorder.ts";
import { OutboxRepo } from "../../../src/store/webhook-outbox-repo.ts";
import { endpoint, event } from "../../support/outbox-fixtures.ts";
import { mongoUrlFor } from "../../support/env.ts";

describe("store/webhook-outbox-recorder: the queue tails it keeps", () => {
  let client: MongoClient;
  let db: Db;

  before(async () => {
    client = await MongoClient.connect(mongoUrlFor(`tails${randomBytes(3).toString("hex")}`));
    db = client.db();
    await new OutboxRepo(db, "n0").ensureIndexes();
  });
  after(async () => {
    await db.dropDatabase();
    await client.close();
  });

  it("forgets tails older than maxTailAgeMs: recording for new accounts keeps a bounded number", async () => {
    let now = 1_000_000;
    const repo = new OutboxRepo(db, "n1");
    const recorder = new OutboxRecorder(repo.col, "n1", 1000, () => now);
    const tails = () => (recorder as unknown as { tails: Map<string, unknown> }).tails.size;
    const endpoints = [endpoint("wh_a")];
    const accounts = (round: number) => Array.from({ length: 20 }, (_, i) => `acc_${round}_${i}`);
    for (let round = 0; round < 5; round++) {
      now += 1001;
      await recorder.recordMany(accounts(round).map((acc) => ({ ev: event(acc, 0), endpoints })));
      assert.equal(tails(), 20, `round ${round}: only this round's queues are kept`);
    }
    // A queue whose tail was forgotten reads it again: its next row goes after its last one.
    now += 1001;
    const [again] = await recorder.record(event("acc_0_0", 1), endpoints);
    assert.equal(again.seq, 2);
    assert.equal(tails(), 1);
  });
});
