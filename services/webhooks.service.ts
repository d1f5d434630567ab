// `webhooks`: signed, retried delivery of account events to app backends, from a MongoDB outbox
// (DESIGN.md, "Services"). Runs on any node; any number of nodes may run it.
// - Endpoints per workspace: webhooks.create/list/get/update/remove, webhooks.deliveries.
// - Account events come from the event log (src/store/events-repo.ts): a webhooks node tails it
//   (src/webhooks/log-tail.ts, woken early by the broadcast that carries the event's `cursor`) and records
//   each event idempotently in the outbox (src/store/webhook-outbox-repo.ts), so an event is recorded even
//   when no webhooks node was up when it happened. One node at a time records a workspace
//   (src/webhooks/recorder-slots.ts). Events broadcast without a cursor (QR codes, which are not logged)
//   are recorded from the broadcast, as they arrive, by the node that records their workspace.
// - Delivery: src/webhooks/delivery-loop.ts; one node at a time per endpoint (src/store/webhook-leases-repo.ts).
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { ACCOUNT_EVENTS, WORKSPACE_ID_PATTERN } from "../src/accounts/types.ts";
import { configOf } from "../src/config.ts";
import { UrlNotAllowedError, ValidationError } from "../src/errors.ts";
import { createIndexRacing } from "../src/store/mongo.ts";
import { pageCursorOf, pagePositionOf } from "../src/store/page-cursor.ts";
import { EventCursorsRepo } from "../src/store/event-cursors-repo.ts";
import { cursorOf, eventId, EventsRepo, seqOfCursor, type EventDoc } from "../src/store/events-repo.ts";
import { LogTail } from "../src/webhooks/log-tail.ts";
import { RecorderSlots } from "../src/webhooks/recorder-slots.ts";
import { DeliveryLoop } from "../src/webhooks/delivery-loop.ts";
import type { QueuePosition } from "../src/webhooks/queue-cursors.ts";
import { EndpointsRepo } from "../src/store/webhook-endpoints-repo.ts";
import { SecretBox } from "../src/store/secrets.ts";
import { LeaseRepo, RECORDERS_COLLECTION } from "../src/store/webhook-leases-repo.ts";
import { OutboxRepo, type RecordResult } from "../src/store/webhook-outbox-repo.ts";
import { QuotasRepo } from "../src/store/quotas-repo.ts";
import { QuotaBook } from "../src/quotas.ts";
import { eventIdOf, filterMatches, subjectOf } from "../src/webhooks/events.ts";
import { AddressPolicy, refusedHost } from "../src/net/address-guard.ts";
import { generateSecret } from "../src/webhooks/signing.ts";
import {
  DELIVERY_STATUSES,
  toDeliveryView,
  toEndpointView,
  type DeliveryStatus,
  type DeliveryView,
  type EndpointDoc,
  type EndpointView,
} from "../src/webhooks/types.ts";
import { mongoMixin, type MongoVars } from "../mixins/mongo.mixin.ts";

export const WEBHOOK_EVENT_FILTERS = [...ACCOUNT_EVENTS, "*"] as const;

export interface CreateWebhookParams {
  workspaceId: string;
  url: string;
  /** HMAC key; generated (and returned once) when absent. */
  secret?: string;
  /** @default ["*"] */
  events?: string[];
  /** @default true */
  enabled?: boolean;
}
export interface WebhookParams {
  workspaceId: string;
  id: string;
}
export interface UpdateWebhookParams extends WebhookParams {
  url?: string;
  events?: string[];
  enabled?: boolean;
}
export interface DeliveriesParams extends WebhookParams {
  status?: DeliveryStatus;
  /** @default 100 */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
}

/** Deliveries, newest first; `nextCursor` names the next (older) page, null on the last. Without
 * `cursor` and `limit` the first 100, as before pagination (which answered `items` alone). */
export interface DeliveriesPage {
  items: DeliveryView[];
  nextCursor: string | null;
}

interface WebhooksMethods {
  onAccountEvent(event: string, payload: unknown): Promise<void>;
  recordEvent(event: string, payload: unknown): Promise<void>;
  recordLogged(docs: EventDoc[]): Promise<void>;
  recordFor(event: string, payload: unknown, eventId: string): Promise<void>;
  recorded(results: RecordResult[]): void;
  endpointsOf(workspaceId: string): Promise<EndpointDoc[]>;
  endpointsFor(workspaceId: string, event: string): Promise<EndpointDoc[]>;
  endpointsChanged(workspaceId: string, endpointId: string): Promise<void>;
}

interface WebhooksVars extends MongoVars {
  /** Addresses receivers may have (WEBHOOK_ALLOW_PRIVATE). */
  policy: AddressPolicy;
  endpoints: EndpointsRepo;
  quotas: QuotaBook;
  outbox: OutboxRepo;
  loop: DeliveryLoop;
  tail: LogTail;
  /** The workspaces this node records. */
  slots: RecorderSlots;
  /** Per account, the tail of its recording chain: one account's events are recorded in arrival order. */
  recording: Map<string, Promise<void>>;
  /** Enabled endpoints per workspace, read at most every few polls; dropped on `webhooks.changed`. */
  endpointCache: Map<string, { docs: EndpointDoc[]; at: number }>;
  endpointCacheMs: number;
}

const workspaceId = { type: "string", pattern: WORKSPACE_ID_PATTERN };
const id = { type: "string", min: 1, max: 64 };
const url = { type: "string", min: 8, max: 2048 };
const events = {
  type: "array",
  items: { type: "enum", values: WEBHOOK_EVENT_FILTERS },
  min: 1,
  max: WEBHOOK_EVENT_FILTERS.length,
};

/** Only absolute http(s) URLs; anything else is a 422. */
async function checkUrl(value: string, policy: AddressPolicy): Promise<string> {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ValidationError("url must be an absolute http or https URL", { field: "url", value });
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new ValidationError("url must use http or https", { field: "url", value });
  }
  const refused = await refusedHost(parsed, policy);
  if (refused) throw new UrlNotAllowedError(value, refused);
  return parsed.toString();
}

const WebhooksService: ServiceSchema<ServiceSettingSchema, WebhooksMethods, WebhooksVars> = {
  name: "webhooks",
  mixins: [mongoMixin()],

  actions: {
    create: {
      params: {
        workspaceId,
        url,
        secret: { type: "string", min: 16, max: 256, optional: true },
        events: { ...events, optional: true },
        enabled: { type: "boolean", optional: true, convert: true },
      },
      async handler(ctx: Context<CreateWebhookParams>): Promise<EndpointView> {
        const { workspaceId, secret, events, enabled } = ctx.params;
        await this.quotas.admit(
          workspaceId,
          "webhooks",
          async () => (await this.endpoints.list(workspaceId)).length,
        );
        const doc = await this.endpoints.create({
          workspaceId,
          url: await checkUrl(ctx.params.url, this.policy),
          secret: secret ?? generateSecret(),
          events,
          enabled,
        });
        await this.endpointsChanged(workspaceId, doc._id);
        return toEndpointView(doc, true);
      },
    },
    list: {
      params: { workspaceId },
      async handler(ctx: Context<{ workspaceId: string }>): Promise<{ items: EndpointView[] }> {
        const docs = await this.endpoints.list(ctx.params.workspaceId);
        return { items: docs.map((d) => toEndpointView(d)) };
      },
    },
    get: {
      params: { workspaceId, id },
      async handler(ctx: Context<WebhookParams>): Promise<EndpointView> {
        return toEndpointView(await this.endpoints.get(ctx.params.workspaceId, ctx.params.id));
      },
    },
    update: {
      params: {
        workspaceId,
        id,
        url: { ...url, optional: true },
        events: { ...events, optional: true },
        enabled: { type: "boolean", optional: true, convert: true },
      },
      async handler(ctx: Context<UpdateWebhookParams>): Promise<EndpointView> {
        const { workspaceId, id, events, enabled } = ctx.params;
        const patch: { url?: string; events?: string[]; enabled?: boolean } = {};
        if (ctx.params.url !== undefined) patch.url = await checkUrl(ctx.params.url, this.policy);
        if (events !== undefined) patch.events = [...new Set(events)];
        if (enabled !== undefined) patch.enabled = enabled;
        const doc = await this.endpoints.update(workspaceId, id, patch);
        await this.endpointsChanged(workspaceId, id);
        return toEndpointView(doc);
      },
    },
    remove: {
      params: { workspaceId, id },
      async handler(ctx: Context<WebhookParams>): Promise<EndpointView> {
        const doc = await this.endpoints.remove(ctx.params.workspaceId, ctx.params.id);
        await this.outbox.removeEndpoint(doc._id);
        await this.endpointsChanged(ctx.params.workspaceId, doc._id);
        return toEndpointView(doc);
      },
    },
    deliveries: {
      params: {
        workspaceId,
        id,
        status: { type: "enum", values: DELIVERY_STATUSES, optional: true },
        limit: { type: "number", integer: true, min: 1, max: 1000, optional: true, convert: true },
        cursor: { type: "string", min: 1, max: 200, optional: true },
      },
      async handler(ctx: Context<DeliveriesParams>): Promise<DeliveriesPage> {
        const { workspaceId, id, status, limit = 100, cursor } = ctx.params;
        const after = cursor === undefined ? undefined : pagePositionOf(cursor);
        if (after === null)
          throw new ValidationError("cursor is not a nextCursor of this list", {
            field: "cursor",
            value: cursor,
          });
        const endpoint = await this.endpoints.get(workspaceId, id);
        const { docs, more } = await this.outbox.page(endpoint._id, status, limit, after);
        const last = docs.at(-1);
        return {
          items: docs.map(toDeliveryView),
          nextCursor: more && last ? pageCursorOf(last.createdAt, last._id) : null,
        };
      },
    },
  },

  events: {
    ...Object.fromEntries(
      ACCOUNT_EVENTS.map((event) => [
        event,
        {
          handler(this: WebhooksMethods, ctx: Context<unknown>) {
            return this.onAccountEvent(event, ctx.params);
          },
        },
      ]),
    ),
    /** Another node recorded rows (src/webhooks/delivery-loop.ts, `recordedElsewhere`). */
    "webhooks.recorded": {
      handler(this: WebhooksVars, ctx: Context<{ node: string; rows: QueuePosition[] }>) {
        const { node, rows } = ctx.params ?? {};
        if (node === ctx.broker.nodeID || !Array.isArray(rows)) return;
        this.loop?.recordedElsewhere(rows);
      },
    },
    /** Endpoints of a workspace changed on some node: drop what this node cached. */
    "webhooks.changed": {
      handler(this: WebhooksVars, ctx: Context<{ workspaceId: string; endpointId: string }>) {
        this.endpointCache.delete(ctx.params.workspaceId);
        this.loop?.forgetEndpoint(ctx.params.endpointId);
      },
    },
  },

  methods: {
    async endpointsOf(workspaceId: string): Promise<EndpointDoc[]> {
      const cached = this.endpointCache.get(workspaceId);
      if (cached && Date.now() - cached.at < this.endpointCacheMs) return cached.docs;
      const docs = await this.endpoints.enabledFor(workspaceId);
      this.endpointCache.set(workspaceId, { docs, at: Date.now() });
      return docs;
    },

    /** The workspace's enabled endpoints that take `event`. */
    async endpointsFor(workspaceId: string, event: string): Promise<EndpointDoc[]> {
      return (await this.endpointsOf(workspaceId)).filter((e) => filterMatches(e.events, event));
    },

    async endpointsChanged(workspaceId: string, endpointId: string): Promise<void> {
      this.endpointCache.delete(workspaceId);
      this.loop.forgetEndpoint(endpointId);
      await this.broker.broadcast("webhooks.changed", { workspaceId, endpointId });
    },

    /** A logged event (it carries its `cursor`) wakes the log reader; any other is recorded now, after
     * what the log holds of its workspace (a QR code after the `qr_scanning` status logged before it). */
    async onAccountEvent(event: string, payload: unknown): Promise<void> {
      const subject = subjectOf(payload);
      const cursor = (payload as { cursor?: unknown } | null)?.cursor;
      const seq = seqOfCursor(cursor);
      if (subject && seq !== null) {
        const { cursor: _, ...logged } = payload as Record<string, unknown>;
        this.tail?.offer({
          _id: eventId(subject.workspaceId, seq),
          workspaceId: subject.workspaceId,
          seq,
          event,
          payload: logged,
          at: new Date(),
        });
        return;
      }
      if (subject && this.slots && !this.slots.holds(subject.workspaceId)) return;
      if (subject && this.tail) await this.tail.drain(subject.workspaceId);
      await this.recordEvent(event, payload);
    },

    /** A run of one workspace's logged events, recorded together (each account's in order). An event's
     * body carries its cursor; its id is that of the logged payload. */
    async recordLogged(docs: EventDoc[]): Promise<void> {
      const items: Parameters<OutboxRepo["recordMany"]>[0] = [];
      for (const doc of docs) {
        const payload = { ...(doc.payload as object), cursor: cursorOf(doc.seq) };
        const subject = subjectOf(payload);
        if (!subject) continue;
        const endpoints = await this.endpointsFor(subject.workspaceId, doc.event);
        if (endpoints.length === 0) continue;
        const eventId = eventIdOf(doc.event, doc.payload);
        items.push({ ev: { eventId, event: doc.event, ...subject, payload }, endpoints });
      }
      if (items.length) this.recorded(await this.outbox.recordMany(items));
    },

    /** Rows this node recorded: its delivery loop hears of them, and the holders of the endpoints it
     * does not hold are told on the bus. */
    recorded(results: RecordResult[]): void {
      const elsewhere = results.filter((r) => !this.loop.holds(r.endpointId));
      this.loop.notify(results);
      if (elsewhere.length === 0) return;
      const rows: QueuePosition[] = elsewhere.map(({ endpointId, accountId, seq }) => ({
        endpointId,
        accountId,
        seq,
      }));
      this.broker
        .broadcast("webhooks.recorded", { node: this.broker.nodeID, rows }, { groups: ["webhooks"] })
        .catch((err: Error) => this.logger.warn(`webhooks: telling of recorded rows failed: ${err.message}`));
    },

    /** Records the event for the workspace's matching endpoints, then wakes the delivery loop. */
    async recordFor(event: string, payload: unknown, eventId: string): Promise<void> {
      const subject = subjectOf(payload);
      if (!subject) return;
      const { workspaceId, accountId } = subject;
      const endpoints = await this.endpointsFor(workspaceId, event);
      if (endpoints.length === 0) return;
      this.recorded(await this.outbox.record({ eventId, event, workspaceId, accountId, payload }, endpoints));
    },

    /** Records an account event heard on the bus. Chained per account so this node inserts one
     * account's events in the order it received them. */
    recordEvent(event: string, payload: unknown): Promise<void> {
      const subject = subjectOf(payload);
      if (!subject) {
        this.logger.warn(`webhooks: ${event} without workspaceId/accountId ignored`);
        return Promise.resolve();
      }
      const { workspaceId, accountId } = subject;
      const key = `${workspaceId}/${accountId}`;
      const record = () => this.recordFor(event, payload, eventIdOf(event, payload));
      const tail = (this.recording.get(key) ?? Promise.resolve())
        .then(record)
        .catch((err) =>
          this.logger.error(`webhooks: could not record ${event} of ${accountId}: ${(err as Error).message}`),
        );
      this.recording.set(key, tail);
      void tail.then(() => {
        if (this.recording.get(key) === tail) this.recording.delete(key);
      });
      return tail;
    },
  },

  created() {
    this.recording = new Map();
    this.endpointCache = new Map();
  },

  async started() {
    const cfg = configOf(this.broker);
    this.endpointCacheMs = 5 * cfg.webhookPollMs;
    this.endpoints = new EndpointsRepo(this.db, SecretBox.fromConfig(cfg));
    this.policy = new AddressPolicy(cfg.webhookAllowPrivate);
    this.quotas = new QuotaBook(new QuotasRepo(this.db), cfg.quotas);
    this.outbox = new OutboxRepo(
      this.db,
      this.broker.nodeID,
      cfg.webhookRetentionMs > 0 ? cfg.webhookRetentionMs / 2 : Infinity,
    );
    const leases = new LeaseRepo(this.db, this.broker.nodeID, cfg.webhookLeaseTtlMs);
    const recorders = new LeaseRepo(this.db, this.broker.nodeID, cfg.webhookLeaseTtlMs, RECORDERS_COLLECTION);
    await createIndexRacing(async () => {
      await this.endpoints.ensureIndexes();
      await this.outbox.ensureIndexes();
      await leases.ensureIndexes();
      await recorders.ensureIndexes();
    });
    this.loop = new DeliveryLoop(
      { outbox: this.outbox, leases, endpoints: this.endpoints },
      {
        pollMs: cfg.webhookPollMs,
        scanMs: cfg.webhookScanMs,
        leaseTtlMs: cfg.webhookLeaseTtlMs,
        timeoutMs: cfg.webhookTimeoutMs,
        maxAttempts: cfg.webhookMaxAttempts,
        backoff: { baseMs: cfg.webhookBackoffBaseMs, maxMs: cfg.webhookBackoffMaxMs },
        concurrency: cfg.webhookConcurrency,
        workspaceConcurrency: cfg.webhookWorkspaceConcurrency,
        retentionMs: cfg.webhookRetentionMs,
        policy: this.policy,
      },
      this.logger,
    );
    this.loop.start();
    const log = new EventsRepo(this.db);
    const cursors = new EventCursorsRepo(this.db, "webhooks");
    await createIndexRacing(() => log.ensureIndexes());
    this.slots = new RecorderSlots(
      recorders,
      { leaseTtlMs: cfg.webhookLeaseTtlMs, tickMs: Math.min(cfg.webhookPollMs, cfg.webhookLeaseTtlMs / 6) },
      () =>
        this.broker.registry
          .getServiceList({ onlyAvailable: true })
          .filter((s: { name: string }) => s.name === "webhooks").length,
      () => this.tail.adopt(),
      this.logger,
    );
    this.tail = new LogTail(
      log,
      cursors,
      (docs) => this.recordLogged(docs),
      { pollMs: cfg.webhookPollMs, records: (ws) => this.slots.holds(ws) },
      this.logger,
    );
    await this.slots.start();
    await this.tail.start();
  },

  async stopped() {
    await this.tail?.stop();
    await this.slots?.stop();
    await Promise.allSettled(this.recording.values());
    await this.loop?.stop();
  },
};

export default WebhooksService;
