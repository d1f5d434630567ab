// The owner logs an account's status events before the fenced write of that status (issue 17): a
// crash between the two can leave an event whose status was not written, never a written status
// without its event. Real FerretDB and the real repositories; the accounts repository is observed at
// the moment a write begins (what the log holds then), and made to die there for the crash case.
import { strict as assert } from "node:assert";
import { MongoClient, type Db } from "mongodb";
import type { AccountDoc } from "../../../src/accounts/types.ts";
import type { Fence } from "../../../src/placement/fence.ts";
import { loggingPublisher } from "../../../src/session/event-publisher.ts";
import { SessionPipeline, type PipelineSession } from "../../../src/session/pipeline.ts";
import { AccountsRepo, type StatusPatch } from "../../../src/store/accounts-repo.ts";
import { EventsRepo } from "../../../src/store/events-repo.ts";
import { mongoUrlFor } from "../../support/env.ts";

const WS = "logfirst";
const FENCE: Fence = { node: "node-a", epoch: 3 };

/** The real repository, noting the account's logged statuses when each write begins. */
class ObservedRepo extends AccountsRepo {
  readonly loggedAtWrite: string[][] = [];
  /** The node dies after its events are logged, before its status write reaches the database. */
  dieBeforeWrite = false;
  constructor(
    db: Db,
    private readonly log: EventsRepo,
  ) {
    super(db);
  }

  override async writeStatus(id: string, fence: Fence, patch: StatusPatch): Promise<boolean> {
    this.loggedAtWrite.push(await loggedStatuses(this.log, id));
    if (this.dieBeforeWrite) throw new Error("the node died before its status write");
    return super.writeStatus(id, fence, patch);
  }
}

async function loggedStatuses(log: EventsRepo, accountId: string): Promise<string[]> {
  const docs = await log.readAfter(WS, 0, 1000);
  return docs
    .filter((d) => d.event === "account.status")
    .map((d) => d.payload as { accountId: string; status: string })
    .filter((p) => p.accountId === accountId)
    .map((p) => p.status);
}

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

  /** An account in `initializing` owned by FENCE, and a pipeline of its session on real repositories. */
  async function pipelineFor(accountId: string) {
    const log = new EventsRepo(db);
    const repo = new ObservedRepo(db, log);
    const now = new Date();
    const doc: AccountDoc = {
      _id: accountId,
      workspaceId: WS,
      sessionId: `simulated_${WS}_${accountId}`,
      name: accountId,
      engine: "simulated",
      desiredState: "running",
      status: "initializing",
      node: FENCE.node,
      epoch: FENCE.epoch,
      createdAt: now,
      updatedAt: now,
    };
    await repo.col.insertOne(doc);
    const broadcasts: { event: string; payload: { status?: string; cursor?: string } }[] = [];
    const errors: string[] = [];
    const logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: () => undefined,
      error: (...a: unknown[]) => errors.push(a.map(String).join(" ")),
    };
    const session: PipelineSession = {
      accountId,
      workspaceId: WS,
      sessionId: doc.sessionId,
      fence: FENCE,
      closed: false,
      status: "initializing",
      reason: null,
      phoneNumber: null,
      qr: null,
    };
    const pipeline = new SessionPipeline(
      session,
      {
        repo,
        ownership: () => ({ current: () => FENCE, acquire: async () => FENCE }),
        publisher: loggingPublisher(
          log,
          (event, payload) => broadcasts.push({ event, payload } as never),
          logger,
        ),
        logger,
      },
      { release: async () => undefined, fenceOut: async () => undefined },
    );
    const stored = async () => (await repo.col.findOne({ _id: accountId }))?.status;
    return { repo, log, pipeline, broadcasts, errors, stored };
  }

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
    assert.deepEqual(await loggedStatuses(t.log, "acc_crash"), ["authenticated", "connected"]);
    assert.equal(await t.stored(), "authenticated", "the status write never happened");
    assert.equal(t.broadcasts.length, before, "nothing is broadcast for a write that did not happen");
    assert.match(t.errors.join("\n"), /died before its status write/, "the failure is reported");
  });
});
