// Session pipelines on the real repositories (FerretDB), as an owner node runs them: an account in
// `initializing` owned by FENCE, its status writes observed (what the log holds when one begins) and,
// when a test asks, made to die or to wait there.
import type { Db } from "mongodb";
import type { AccountDoc } from "../../../src/accounts/types.ts";
import type { Fence } from "../../../src/placement/fence.ts";
import { loggingPublisher, type Publisher } from "../../../src/session/event-publisher.ts";
import { SessionPipeline, type PipelineSession } from "../../../src/session/pipeline.ts";
import { AccountsRepo, type StatusPatch } from "../../../src/store/accounts-repo.ts";
import { EventsRepo } from "../../../src/store/events-repo.ts";

export const FENCE: Fence = { node: "node-a", epoch: 3 };

export interface Broadcasted {
  event: string;
  payload: { status?: string; cursor?: string; text?: string };
}

/** The real repository, noting the account's logged statuses when each write begins. */
export class ObservedRepo extends AccountsRepo {
  readonly loggedAtWrite: string[][] = [];
  /** The node dies after its events are logged, before its status write reaches the database. */
  dieBeforeWrite = false;
  /** Status writes wait for this before they reach the database. */
  gate: Promise<void> = Promise.resolve();
  constructor(
    db: Db,
    private readonly log: EventsRepo,
    private readonly workspaceId: string,
  ) {
    super(db);
  }

  override async writeStatus(id: string, fence: Fence, patch: StatusPatch): Promise<boolean> {
    this.loggedAtWrite.push(await loggedStatuses(this.log, this.workspaceId, id));
    if (this.dieBeforeWrite) throw new Error("the node died before its status write");
    await this.gate;
    return super.writeStatus(id, fence, patch);
  }
}

export async function loggedStatuses(
  log: EventsRepo,
  workspaceId: string,
  accountId: string,
): Promise<string[]> {
  const docs = await log.readAfter(workspaceId, 0, 1000);
  return docs
    .filter((d) => d.event === "account.status")
    .map((d) => d.payload as { accountId: string; status: string })
    .filter((p) => p.accountId === accountId)
    .map((p) => p.status);
}

/** What the pipelines of one node share: the event log and its publisher (each given its own when
 * `pipelineFor` is not handed one). */
export function nodeLog(db: Db) {
  const log = new EventsRepo(db);
  const broadcasts: Broadcasted[] = [];
  const errors: string[] = [];
  const logger = {
    debug: () => undefined,
    info: () => undefined,
    warn: () => undefined,
    error: (...a: unknown[]) => errors.push(a.map(String).join(" ")),
  };
  const publisher: Publisher = loggingPublisher(
    log,
    (event, payload) => broadcasts.push({ event, payload } as Broadcasted),
    logger,
  );
  return { log, publisher, broadcasts, errors, logger };
}

/** An account in `initializing` owned by FENCE, and a pipeline of its session on real repositories. */
export async function pipelineFor(
  db: Db,
  workspaceId: string,
  accountId: string,
  node: ReturnType<typeof nodeLog> = nodeLog(db),
) {
  const { log, publisher, broadcasts, errors, logger } = node;
  const repo = new ObservedRepo(db, log, workspaceId);
  const now = new Date();
  const doc: AccountDoc = {
    _id: accountId,
    workspaceId,
    sessionId: `simulated_${workspaceId}_${accountId}`,
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
  const session: PipelineSession = {
    accountId,
    workspaceId,
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
      publisher,
      logger,
    },
    { release: async () => undefined, fenceOut: async () => undefined },
  );
  const stored = async () => (await repo.col.findOne({ _id: accountId }))?.status;
  return { repo, log, pipeline, broadcasts, errors, stored };
}
