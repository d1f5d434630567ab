// Webhook endpoints of each workspace (`webhook_endpoints`). Every read is scoped by workspace: an
// endpoint of another workspace is "not found", never "forbidden".
//
// The webhooks quota counts them as the accounts quota counts accounts (QuotaTally, src/quotas.ts):
// each create and delete writes the next version of the workspace's tally (`webhook_endpoint_tallies`,
// `_id` = `<workspaceId>|<zero-padded seq>`) by a plain insert, which only one writer can make, so
// creates racing through any number of nodes stop exactly at the quota. The version is written before
// the endpoint and counted out again when the endpoint was not stored; a crash in between (or between
// a delete and its count) leaves the tally one high until the workspace reaches its quota, where its
// endpoints are counted. (A check after the insert refused racing creates all at once; slots freed by
// a conditional delete would not do on FerretDB, whose conditional writes read, then write by `_id`:
// only an insert is a compare-and-set there.)
import { randomBytes } from "node:crypto";
import type { Collection, Db } from "mongodb";
import { NotFoundError } from "../errors.ts";
import { QuotaTally } from "../quotas.ts";
import { retryTransient } from "./mongo.ts";
import { SecretsKeyError, type SecretBox } from "./secrets.ts";
import { TallyVersions } from "./tally-repo.ts";
import type { EndpointDoc, EndpointInfo, EndpointTarget } from "./webhook-docs.ts";

export const ENDPOINTS_COLLECTION = "webhook_endpoints";
export const ENDPOINT_TALLIES_COLLECTION = "webhook_endpoint_tallies";
/** Written once every workspace with endpoints from before tallies has its first version. */
const SEEDED_ID = "~seeded";

/** The versions of the webhooks quota's tallies (`webhook_endpoint_tallies`). */
export class EndpointTallies extends TallyVersions {
  constructor(db: Db) {
    super(db, ENDPOINT_TALLIES_COLLECTION);
  }

  async ensureIndexes(): Promise<void> {
    // The recent creates of a workspace at its quota.
    await this.col.createIndex({ workspaceId: 1, at: 1 });
  }

  /**
   * Gives every workspace that has endpoints but no tally (a database from before tallies) its first
   * version, its endpoints counted, once per database. Safe to run from every node at start; a version
   * another writer made first wins.
   */
  async seedOnce(): Promise<void> {
    if (await retryTransient(() => this.col.findOne({ _id: SEEDED_ID }))) return;
    const counts = await retryTransient(() =>
      this.db
        .collection(ENDPOINTS_COLLECTION)
        .aggregate<{ _id: unknown; n: number }>([{ $group: { _id: "$workspaceId", n: { $sum: 1 } } }])
        .toArray(),
    );
    for (const { _id: workspaceId, n } of counts)
      if (typeof workspaceId === "string") await this.write(workspaceId, 1, n, 0);
    await this.markSeeded(SEEDED_ID);
  }
}

export interface NewEndpoint {
  workspaceId: string;
  url: string;
  /** HMAC key (the service generates one when the client gives none). */
  secret: string;
  events?: string[];
  enabled?: boolean;
}

/** A quota limit (0: unlimited), or how to read it when it can matter. */
export type EndpointLimit = number | (() => Promise<number>);

export class EndpointsRepo {
  readonly col: Collection<EndpointDoc>;
  readonly tallies: EndpointTallies;
  /** Endpoints per workspace, for the webhooks quota. */
  private readonly tally: QuotaTally;

  /**
   * @param box seals the secrets at rest (null: stored as they are)
   * @param warn told of a tally this repo could not count an endpoint out of (left one high; counted
   *   again at the quota)
   */
  constructor(
    db: Db,
    private readonly box: SecretBox | null = null,
    private readonly warn: (message: string) => void = () => undefined,
  ) {
    this.col = db.collection<EndpointDoc>(ENDPOINTS_COLLECTION);
    this.tallies = new EndpointTallies(db);
    this.tally = new QuotaTally(this.tallies, (ws) => this.count(ws), "webhooks");
  }

  /** The endpoint with its secret opened; a plain or older-key one is sealed again in place. */
  private async opened(doc: EndpointDoc): Promise<EndpointDoc> {
    if (!this.box) return doc;
    const { plain, stale } = this.box.openString(doc.secret);
    if (stale) {
      await this.col.updateOne(
        { _id: doc._id, secret: doc.secret },
        { $set: { secret: this.box.sealString(plain) } },
      );
    }
    return { ...doc, secret: plain };
  }

  /** The endpoint as its workspace's calls read it, without its secret. The secret is opened all the
   * same, so that reads re-seal a plain or older-key one (a rotation completes as endpoints are read);
   * one that no configured key opens is flagged rather than refused, so that its workspace can still
   * list, read and remove it. */
  private async described(doc: EndpointDoc): Promise<EndpointInfo> {
    const info = withoutSecret(doc);
    try {
      await this.opened(doc);
    } catch (err) {
      if (err instanceof SecretsKeyError) return { ...info, secretUnreadable: true };
      throw err;
    }
    return info;
  }

  async ensureIndexes(): Promise<void> {
    await this.col.createIndex({ workspaceId: 1 });
    await this.tallies.ensureIndexes();
  }

  /** The workspace's endpoints, counted (the tally's recount at the quota). */
  count(workspaceId: string): Promise<number> {
    return retryTransient(() => this.col.countDocuments({ workspaceId }));
  }

  /**
   * Stores a new endpoint, counted in its workspace's tally first: throws QuotaExceededError (nothing
   * stored) when one more would pass `limit` (@default 0, unlimited).
   */
  async create(input: NewEndpoint, limit: EndpointLimit = 0): Promise<EndpointDoc> {
    await this.tally.reserve(input.workspaceId, limit);
    const doc = this.newDoc(input);
    try {
      await this.col.insertOne(this.box ? { ...doc, secret: this.box.sealString(doc.secret) } : doc);
      return doc;
    } catch (err) {
      // Stored after all (the answer was lost on the way): kept, as the caller is answered. Not stored:
      // counted out again. When that cannot be told it stays counted: one too many is corrected at the
      // quota, one too few would let the workspace pass it.
      const stored = await this.col.findOne({ _id: doc._id }, { projection: { _id: 1 } }).then(
        (found) => found !== null,
        () => null,
      );
      if (stored) return doc;
      if (stored === false)
        await this.tally.release(input.workspaceId).catch((e: Error) => this.notCountedOut(doc, e));
      throw err;
    }
  }

  private newDoc(input: NewEndpoint): EndpointDoc {
    const now = new Date();
    return {
      _id: `wh_${randomBytes(8).toString("hex")}`,
      workspaceId: input.workspaceId,
      url: input.url,
      secret: input.secret,
      events: input.events && input.events.length > 0 ? [...new Set(input.events)] : ["*"],
      enabled: input.enabled ?? true,
      createdAt: now,
      updatedAt: now,
    };
  }

  private notCountedOut(doc: Pick<EndpointDoc, "_id" | "workspaceId">, err: Error): void {
    this.warn(`webhook endpoint ${doc._id}: not counted out of ${doc.workspaceId} (${err.message})`);
  }

  async list(workspaceId: string): Promise<EndpointInfo[]> {
    const docs = await this.col.find({ workspaceId }).sort({ createdAt: 1, _id: 1 }).toArray();
    return Promise.all(docs.map((d) => this.described(d)));
  }

  /** Enabled endpoints of a workspace: who gets its events. Their secrets are neither read nor opened
   * (one that cannot be opened must not stop its workspace's recording). */
  enabledFor(workspaceId: string): Promise<EndpointTarget[]> {
    return this.col
      .find<EndpointTarget>({ workspaceId, enabled: true }, { projection: { _id: 1, events: 1 } })
      .toArray();
  }

  async get(workspaceId: string, id: string): Promise<EndpointInfo> {
    return this.described(await this.stored(workspaceId, id));
  }

  private async stored(workspaceId: string, id: string): Promise<EndpointDoc> {
    const doc = await this.col.findOne({ _id: id, workspaceId });
    if (!doc) throw new NotFoundError("Webhook", id);
    return doc;
  }

  /** The endpoint with its secret opened (its deliveries sign with it); throws SecretsKeyError when no
   * configured key opens it. */
  async findById(id: string): Promise<EndpointDoc | null> {
    const doc = await this.col.findOne({ _id: id });
    return doc && this.opened(doc);
  }

  async update(
    workspaceId: string,
    id: string,
    patch: Partial<Pick<EndpointDoc, "url" | "events" | "enabled">>,
  ): Promise<EndpointInfo> {
    await this.stored(workspaceId, id);
    await this.col.updateOne({ _id: id, workspaceId }, { $set: { ...patch, updatedAt: new Date() } });
    return this.get(workspaceId, id);
  }

  /** Deletes the endpoint and counts it out of its workspace's tally (of two removes at once, the one
   * that deleted it). Its secret is not opened: one that cannot be opened is removed all the same. */
  async remove(workspaceId: string, id: string): Promise<EndpointInfo> {
    const doc = withoutSecret(await this.stored(workspaceId, id));
    const { deletedCount } = await this.col.deleteOne({ _id: id, workspaceId });
    if (deletedCount === 1)
      await this.tally.removed(workspaceId).catch((e: Error) => this.notCountedOut(doc, e));
    return doc;
  }
}

function withoutSecret(doc: EndpointDoc): EndpointInfo {
  const { secret: _, ...info } = doc;
  return info;
}
