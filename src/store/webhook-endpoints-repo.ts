// Webhook endpoints of each workspace (`webhook_endpoints`). Every read is scoped by workspace: an
// endpoint of another workspace is "not found", never "forbidden".
import { randomBytes } from "node:crypto";
import type { Collection, Db } from "mongodb";
import { NotFoundError } from "../errors.ts";
import type { SecretBox } from "./secrets.ts";
import type { EndpointDoc } from "./webhook-docs.ts";

export const ENDPOINTS_COLLECTION = "webhook_endpoints";

export interface NewEndpoint {
  workspaceId: string;
  url: string;
  /** HMAC key (the service generates one when the client gives none). */
  secret: string;
  events?: string[];
  enabled?: boolean;
}

export class EndpointsRepo {
  readonly col: Collection<EndpointDoc>;
  /** @param box seals the secrets at rest (null: stored as they are) */
  constructor(
    db: Db,
    private readonly box: SecretBox | null = null,
  ) {
    this.col = db.collection<EndpointDoc>(ENDPOINTS_COLLECTION);
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

  private openAll(docs: EndpointDoc[]): Promise<EndpointDoc[]> {
    return Promise.all(docs.map((d) => this.opened(d)));
  }

  async ensureIndexes(): Promise<void> {
    await this.col.createIndex({ workspaceId: 1 });
  }

  async create(input: NewEndpoint): Promise<EndpointDoc> {
    const now = new Date();
    const doc: EndpointDoc = {
      _id: `wh_${randomBytes(8).toString("hex")}`,
      workspaceId: input.workspaceId,
      url: input.url,
      secret: input.secret,
      events: input.events && input.events.length > 0 ? [...new Set(input.events)] : ["*"],
      enabled: input.enabled ?? true,
      createdAt: now,
      updatedAt: now,
    };
    await this.col.insertOne(this.box ? { ...doc, secret: this.box.sealString(doc.secret) } : doc);
    return doc;
  }

  async list(workspaceId: string): Promise<EndpointDoc[]> {
    return this.openAll(await this.col.find({ workspaceId }).sort({ createdAt: 1, _id: 1 }).toArray());
  }

  /** Enabled endpoints of a workspace: who gets its events. */
  async enabledFor(workspaceId: string): Promise<EndpointDoc[]> {
    return this.openAll(await this.col.find({ workspaceId, enabled: true }).toArray());
  }

  async get(workspaceId: string, id: string): Promise<EndpointDoc> {
    const doc = await this.col.findOne({ _id: id, workspaceId });
    if (!doc) throw new NotFoundError("Webhook", id);
    return this.opened(doc);
  }

  async findById(id: string): Promise<EndpointDoc | null> {
    const doc = await this.col.findOne({ _id: id });
    return doc && this.opened(doc);
  }

  async update(
    workspaceId: string,
    id: string,
    patch: Partial<Pick<EndpointDoc, "url" | "events" | "enabled">>,
  ): Promise<EndpointDoc> {
    await this.get(workspaceId, id);
    await this.col.updateOne({ _id: id, workspaceId }, { $set: { ...patch, updatedAt: new Date() } });
    return this.get(workspaceId, id);
  }

  async remove(workspaceId: string, id: string): Promise<EndpointDoc> {
    const doc = await this.get(workspaceId, id);
    await this.col.deleteOne({ _id: id, workspaceId });
    return doc;
  }
}
