// Webhook endpoint routes (services/webhooks.service.ts).
import { ACCOUNT_EVENTS } from "../../accounts/types.ts";
import { ID_PATTERN } from "../../accounts/params.ts";
import { fieldOf, type ParamRule, type RouteSpec } from "../route-spec.ts";

const webhookId: ParamRule = {
  in: "path",
  type: "string",
  pattern: ID_PATTERN,
  description: "Webhook endpoint id",
};

export const WEBHOOK_ROUTES: RouteSpec[] = [
  // ---- webhooks (services/webhooks.service.ts) ----
  {
    id: "createWebhook",
    method: "POST",
    path: "/webhooks",
    mount: "/api/v1",
    action: "webhooks.create",
    params: {
      url: { in: "body", type: "string", min: 8, max: 2048, description: "Receiver URL (http or https)" },
      secret: {
        in: "body",
        type: "string",
        min: 16,
        max: 256,
        optional: true,
        description: "HMAC-SHA256 signing key; generated when absent. Returned only in this answer",
      },
      events: {
        in: "body",
        type: "array",
        items: { type: "enum", values: [...ACCOUNT_EVENTS, "*"] },
        min: 1,
        max: ACCOUNT_EVENTS.length + 1,
        optional: true,
        description: 'Events to deliver (`account.*` names), or `["*"]` (the default) for all',
      },
      enabled: { in: "body", type: "boolean", optional: true, description: "Deliver to it (default true)" },
    },
    auth: "workspace",
    status: 201,
    location: (webhook) =>
      fieldOf(webhook, "id") ? `/api/v1/webhooks/${fieldOf(webhook, "id")}` : undefined,
    summary:
      "Register a webhook endpoint. Each delivery is a JSON POST with X-Switchboard-Event, -Event-Id, " +
      "-Delivery-Attempt, -Timestamp and -Signature (`sha256=` hex HMAC-SHA256 of `timestamp.body`)",
    tag: "webhooks",
  },
  {
    id: "listWebhooks",
    method: "GET",
    path: "/webhooks",
    mount: "/api/v1",
    action: "webhooks.list",
    params: {},
    auth: "workspace",
    summary: "List the webhook endpoints of the workspace (without secrets)",
    tag: "webhooks",
  },
  {
    id: "getWebhook",
    method: "GET",
    path: "/webhooks/:id",
    mount: "/api/v1",
    action: "webhooks.get",
    params: { id: webhookId },
    auth: "workspace",
    summary: "Get a webhook endpoint (without its secret)",
    tag: "webhooks",
    errors: [404],
  },
  {
    id: "deleteWebhook",
    method: "DELETE",
    path: "/webhooks/:id",
    mount: "/api/v1",
    action: "webhooks.remove",
    params: { id: webhookId },
    auth: "workspace",
    summary: "Delete a webhook endpoint and its pending deliveries",
    tag: "webhooks",
    errors: [404],
  },
  {
    id: "listWebhookDeliveries",
    method: "GET",
    path: "/webhooks/:id/deliveries",
    mount: "/api/v1",
    action: "webhooks.deliveries",
    params: {
      id: webhookId,
      status: {
        in: "query",
        type: "enum",
        values: ["pending", "delivered", "dead"],
        optional: true,
        description: "Only deliveries in this state (`dead`: retries exhausted)",
      },
      // Strings: query values reach the gateway's check unconverted (webhooks.deliveries converts).
      limit: {
        in: "query",
        type: "string",
        pattern: /^([1-9][0-9]{0,2}|1000)$/,
        optional: true,
        description: "Deliveries per page, 1–1000 (100 when absent)",
      },
      cursor: {
        in: "query",
        type: "string",
        pattern: /^[A-Za-z0-9_-]{1,200}$/,
        optional: true,
        description: "`nextCursor` of the previous page",
      },
    },
    auth: "workspace",
    summary:
      "Deliveries of an endpoint, newest first, with attempts and last error: `{items, nextCursor}` " +
      "(100 per page unless `limit`; `nextCursor` null on the last page)",
    tag: "webhooks",
    errors: [404],
  },
  {
    id: "resendWebhookDelivery",
    method: "POST",
    path: "/webhooks/:id/deliveries/:deliveryId/resend",
    mount: "/api/v1",
    action: "webhooks.resend",
    params: {
      id: webhookId,
      deliveryId: {
        in: "path",
        type: "string",
        pattern: /^[A-Za-z0-9_-]{1,64}\|[A-Za-z0-9_-]{1,64}\|[0-9]{12}$/,
        description: "A delivery's `id` from the deliveries list (`|` may be sent as `%7C`)",
      },
    },
    auth: "workspace",
    summary:
      "Send a dead delivery again: it is pending once more with its attempts from 0, and goes out next in " +
      "its account's queue; the delivery as it is then (409 INVALID_STATE unless it is dead)",
    tag: "webhooks",
    errors: [404, 409],
  },
];
