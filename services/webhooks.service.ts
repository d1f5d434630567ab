// `webhooks`: signed, retried delivery of account events to app backends, from a MongoDB outbox
// (DESIGN.md, "Services"). Runs on any node; any number of nodes may run it.
// - Endpoints per workspace: webhooks.create/list/get/update/remove, webhooks.deliveries.
// - Account events come from the event log (src/store/events-repo.ts): a webhooks node tails it
//   (src/webhooks/log-tail.ts, woken early by the broadcast that carries the event's `cursor`) and records
//   each event idempotently in the outbox (src/store/webhook-outbox-repo.ts), so an event is recorded even
//   when no webhooks node was up when it happened. One node at a time records a workspace
//   (src/webhooks/recorder-slots.ts). Events broadcast without a cursor (QR codes, which are not logged)
//   are recorded from the broadcast, as they arrive, by the node that records their workspace (by every
//   node that heard them while its slot has no holder) (src/webhooks/event-recorder.ts).
// - Delivery: src/webhooks/delivery-loop.ts; one node at a time per endpoint (src/store/webhook-leases-repo.ts).
import type { Context, Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { ACCOUNT_EVENTS, WORKSPACE_ID_PATTERN } from "../src/accounts/types.ts";
import { configOf } from "../src/config.ts";
import { InvalidStateError, NotFoundError, UrlNotAllowedError, ValidationError } from "../src/errors.ts";
import { createIndexRacing } from "../src/store/mongo.ts";
import { pageCursorOf, pagePositionOf } from "../src/store/page-cursor.ts";
import { EventCursorsRepo } from "../src/store/event-cursors-repo.ts";
import { EventsRepo } from "../src/store/events-repo.ts";
import { LogTail } from "../src/webhooks/log-tail.ts";
import { EventRecorder } from "../src/webhooks/event-recorder.ts";
import { RecorderSlots } from "../src/webhooks/recorder-slots.ts";
import { DeliveryLoop } from "../src/webhooks/delivery-loop.ts";
import type { QueuePosition } from "../src/webhooks/queue-cursors.ts";
import { EndpointsRepo } from "../src/store/webhook-endpoints-repo.ts";
import { SecretBox } from "../src/store/secrets.ts";
import { LeaseRepo, RECORDERS_COLLECTION } from "../src/store/webhook-leases-repo.ts";
import { OutboxRepo } from "../src/store/webhook-outbox-repo.ts";
import { QuotasRepo } from "../src/store/quotas-repo.ts";
import { QuotaBook } from "../src/quotas.ts";
import { AddressPolicy, refusedHost } from "../src/net/address-guard.ts";
import { generateSecret } from "../src/webhooks/signing.ts";
import {
  DELIVERY_STATUSES,
  toDeliveryView,
  toEndpointView,
  type DeliveryStatus,
  type DeliveryView,
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

export interface ResendParams extends WebhookParams {
  /** A delivery's `id`, as the deliveries list shows it. */
  deliveryId: string;
}

/** Deliveries, newest first; `nextCursor` names the next (older) page, null on the last. Without
 * `cursor` and `limit` the first 100, as before pagination (which answered `items` alone). */
export interface DeliveriesPage {
  items: DeliveryView[];
  nextCursor: string | null;
}

interface WebhooksMethods {
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
  /** Turns account events into outbox rows. */
  recorder: EventRecorder;
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

/** Rows a node tells the others of on the bus (`webhooks.recorded`, `webhooks.resent`). */
interface RowsWord {
  node: string;
  rows: QueuePosition[];
}

/** The rows of another node's word (null: this node's own, or none). */
function rowsFromElsewhere(ctx: Context<RowsWord>): QueuePosition[] | null {
  const { node, rows } = ctx.params ?? {};
  return node === ctx.broker.nodeID || !Array.isArray(rows) ? null : rows;
}

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
        const url = await checkUrl(ctx.params.url, this.policy);
        // Counted in the workspace's tally as it is stored: creates racing on any node stop exactly at
        // the quota (src/store/webhook-endpoints-repo.ts). The quota is read only when it can matter.
        const doc = await this.endpoints.create(
          { workspaceId, url, secret: secret ?? generateSecret(), events, enabled },
          async () => (await this.quotas.of(workspaceId)).webhooks,
        );
        await this.endpointsChanged(workspaceId, doc._id);
        return toEndpointView(doc, doc.secret);
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
    /** A dead delivery sent again: pending once more, attempts from 0, next in its queue. */
    resend: {
      params: { workspaceId, id, deliveryId: { type: "string", min: 1, max: 200 } },
      async handler(this: WebhooksVars, ctx: Context<ResendParams>): Promise<DeliveryView> {
        const { workspaceId, id, deliveryId } = ctx.params;
        const endpoint = await this.endpoints.get(workspaceId, id);
        const row = await this.outbox.resend(endpoint._id, deliveryId);
        if (!row) {
          const stored = await this.outbox.byId(deliveryId);
          if (stored?.endpointId !== endpoint._id) throw new NotFoundError("Delivery", deliveryId);
          throw new InvalidStateError(
            `Delivery '${deliveryId}' is ${stored.status}: only a dead delivery is sent again`,
            { deliveryId, status: stored.status },
          );
        }
        const rows: QueuePosition[] = [
          { endpointId: row.endpointId, accountId: row.accountId, seq: row.seq },
        ];
        this.loop?.resent(rows);
        await ctx.broadcast("webhooks.resent", { node: ctx.broker.nodeID, rows }, { groups: ["webhooks"] });
        return toDeliveryView(row);
      },
    },
  },

  events: {
    ...Object.fromEntries(
      ACCOUNT_EVENTS.map((event) => [
        event,
        {
          // Not awaited by the broadcaster: on a node that also runs `session`, Moleculer's broadcast
          // waits for local handlers, and an account's pipeline waits for its broadcast (an unlogged
          // QR is recorded after a drain of the workspace's log, which a busy workspace prolongs).
          handler(this: WebhooksVars & Service, ctx: Context<unknown>) {
            void this.recorder
              ?.onAccountEvent(event, ctx.params)
              .catch((err: Error) =>
                this.logger.error(`webhooks: recording ${event} failed: ${err.message}`),
              );
          },
        },
      ]),
    ),
    /** Another node recorded rows (src/webhooks/delivery-loop.ts, `recordedElsewhere`). */
    "webhooks.recorded": {
      handler(this: WebhooksVars, ctx: Context<RowsWord>) {
        const rows = rowsFromElsewhere(ctx);
        if (rows) this.loop?.recordedElsewhere(rows);
      },
    },
    /** Another node made dead rows pending again (`resend`). */
    "webhooks.resent": {
      handler(this: WebhooksVars, ctx: Context<RowsWord>) {
        const rows = rowsFromElsewhere(ctx);
        if (rows) this.loop?.resent(rows);
      },
    },
    /** Endpoints of a workspace changed on some node: drop what this node cached. */
    "webhooks.changed": {
      handler(this: WebhooksVars, ctx: Context<{ workspaceId: string; endpointId: string }>) {
        this.recorder?.forget(ctx.params.workspaceId);
        this.loop?.forgetEndpoint(ctx.params.endpointId);
      },
    },
  },

  methods: {
    async endpointsChanged(workspaceId: string, endpointId: string): Promise<void> {
      this.recorder.forget(workspaceId);
      this.loop.forgetEndpoint(endpointId);
      await this.broker.broadcast("webhooks.changed", { workspaceId, endpointId });
    },
  },

  async started() {
    const cfg = configOf(this.broker);
    this.endpoints = new EndpointsRepo(this.db, SecretBox.fromConfig(cfg), (m) => this.logger.warn(m));
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
    // Before the first create: workspaces with endpoints from before tallies get their count.
    await this.endpoints.tallies.seedOnce();
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
    this.recorder = new EventRecorder({
      endpoints: this.endpoints,
      outbox: this.outbox,
      loop: this.loop,
      tell: (rows) =>
        void this.broker
          .broadcast("webhooks.recorded", { node: this.broker.nodeID, rows }, { groups: ["webhooks"] })
          .catch((err: Error) =>
            this.logger.warn(`webhooks: telling of recorded rows failed: ${err.message}`),
          ),
      logger: this.logger,
      endpointCacheMs: 5 * cfg.webhookPollMs,
    });
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
      (docs) => this.recorder.recordLogged(docs),
      { pollMs: cfg.webhookPollMs, records: (ws) => this.slots.holds(ws) },
      this.logger,
    );
    this.recorder.attach(this.tail, this.slots);
    await this.slots.start();
    await this.tail.start();
  },

  async stopped() {
    await this.tail?.stop();
    await this.slots?.stop();
    await this.recorder?.settled();
    await this.loop?.stop();
  },
};

export default WebhooksService;
