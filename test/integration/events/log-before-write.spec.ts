// The owner logs an account's status events before the fenced write of that status (issue 17): a
// crash between the two can leave an event whose status was not written, never a written status
// without its event. Real FerretDB and the real repositories; the accounts repository is observed at
// the moment a write begins (what the log holds then), and made to die there for the crash case.
import { strict as assert } from "node:assert";
import { MongoClient, type Db } from "mongodb";
import { mongoUrlFor } from "../../support/env.ts";
import { loggedStatuses, pipelineFor as pipelineIn } from "./pipelines.ts";

const WS = "logfirst";

describe("event log: a status is logged before it is written", function () {
  this.timeout(30000);
  let client: MongoClient;
  let db: Db;

  before(async () => {
    client = await MongoClient.connect(mongoUrlFor(`logfirst_${process.pid}`));
    db = client.db();
  });
  after(async () => {
    await db?.dropDatabase().catch(() => undefined);
    await client?.close();
  });

  const pipelineFor = (accountId: string) => pipelineIn(db, WS, accountId);

  it("every status of a run is in the log when its one write begins, and broadcast after it with its cursor", async () => {
    const t = await pipelineFor("acc_ordered");
    await Promise.all([
      t.pipeline.enqueue({ kind: "status", status: "authenticated" }),
      t.pipeline.enqueue({ kind: "status", status: "connected", phoneNumber: "4915112345678" }),
    ]);
    assert.deepEqual(
      t.repo.loggedAtWrite,
      [["authenticated", "connected"]],
      "one write, both logged before it",
    );
    assert.equal(await t.stored(), "connected");
    assert.deepEqual(
      t.broadcasts.map((b) => [b.payload.status, typeof b.payload.cursor]),
      [
        ["authenticated", "string"],
        ["connected", "string"],
      ],
    );
    assert.deepEqual(t.errors, []);
  });

  it("a node that dies between the log and the write leaves the event logged and the status unwritten, never the reverse", async () => {
    const t = await pipelineFor("acc_crash");
    await t.pipeline.enqueue({ kind: "status", status: "authenticated" });
    t.repo.dieBeforeWrite = true;
    const before = t.broadcasts.length;
    await t.pipeline.enqueue({ kind: "status", status: "connected", phoneNumber: "4915112345678" });
    assert.deepEqual(await loggedStatuses(t.log, WS, "acc_crash"), ["authenticated", "connected"]);
    assert.equal(await t.stored(), "authenticated", "the status write never happened");
    assert.equal(t.broadcasts.length, before, "nothing is broadcast for a write that did not happen");
    assert.match(t.errors.join("\n"), /died before its status write/, "the failure is reported");
  });
});
