// A workspace's events leave its owner in log order, across its accounts: one account's status is
// broadcast after its status write, another's message at once, and a client that keeps the highest
// cursor it saw would step over the status at its next reconnect were the message broadcast first.
// Real FerretDB, the real repositories and pipelines sharing one node's log; the status write is held
// at its start while the message comes in.
import { strict as assert } from "node:assert";
import { MongoClient, type Db } from "mongodb";
import { mongoUrlFor } from "../../support/env.ts";
import { waitFor } from "../../support/wait.ts";
import { nodeLog, pipelineFor } from "./pipelines.ts";

const WS = "bcorder";

describe("event log: a workspace's events are broadcast in log order", function () {
  this.timeout(30000);
  let client: MongoClient;
  let db: Db;

  before(async () => {
    client = await MongoClient.connect(mongoUrlFor(`bcorder_${process.pid}`));
    db = client.db();
  });
  after(async () => {
    await db?.dropDatabase().catch(() => undefined);
    await client?.close();
  });

  it("a message logged while another account's status write is under way goes out after that status", async () => {
    const node = nodeLog(db);
    const slow = await pipelineFor(db, WS, "acc_status", node);
    const fast = await pipelineFor(db, WS, "acc_message", node);
    let open!: () => void;
    slow.repo.gate = new Promise((r) => (open = r));

    const status = slow.pipeline.enqueue({ kind: "status", status: "authenticated" });
    await waitFor(() => slow.repo.loggedAtWrite.length === 1, { what: "the status write to begin" });
    const message = fast.pipeline.enqueue({
      kind: "message",
      message: { id: "m1", from: "4915100000001", text: "hello", timestamp: 1_800_000_000 },
    });
    await waitFor(async () => (await node.log.readAfter(WS, 0, 10)).length === 2, {
      what: "the message to be logged after the status",
    });
    const logged = (await node.log.readAfter(WS, 0, 10)).map((d) => `${d.event}@${d.seq}`);
    assert.deepEqual(logged, ["account.status@1", "account.message@2"]);

    open();
    await Promise.all([status, message]);
    assert.deepEqual(
      node.broadcasts.map((b) => `${b.event}@${b.payload.cursor}`),
      logged,
      "broadcast in the order logged",
    );
    assert.deepEqual(node.errors, []);
  });
});
