// The REST contract of DESIGN.md ("Interfaces"), declared once. services/api.service.ts generates its
// moleculer-web aliases from this table and src/gateway/openapi.ts generates the OpenAPI document from
// it, so the two cannot drift. Every account alias goes to `accounts.*` (never `session.*`: moleculer-web
// resolves an alias's endpoint before authentication, with the gateway's own context).
import { ACCOUNT_EVENTS } from "../accounts/types.ts";
import { CLUSTER_ACTIONS } from "../placement/actions.ts";
import { METRICS } from "./metrics.ts";

/** Who may call a route: anyone, a workspace key (or the admin key naming a workspace), the admin key. */
export type AuthLevel = "public" | "workspace" | "admin";

/** Where a parameter comes from. `workspaceId` of workspace routes is never declared: the gateway sets
 * it from the caller's key (the admin key passes it in the query or body). */
export type ParamLocation = "path" | "query" | "body";

/** A parameter rule: the subset of fastest-validator rules the gateway needs, convertible to JSON Schema. */
export type ParamRule = (
  | { type: "string"; min?: number; max?: number; pattern?: RegExp }
  | { type: "enum"; values: readonly string[] }
  | { type: "number"; integer?: boolean; min?: number; max?: number }
  | { type: "boolean" }
  | { type: "array"; items: { type: "enum"; values: readonly string[] }; min?: number; max?: number }
) & { in: ParamLocation; optional?: boolean; description?: string };

export interface RouteSpec {
  /** Stable id; also the OpenAPI operationId. */
  id: string;
  method: "GET" | "POST" | "DELETE";
  /** Path with `:param` placeholders, relative to the mount point below. */
  path: string;
  mount: "/api/v1" | "/";
  /** Action called with the validated params. Absent for routes the gateway answers itself (`handler`). */
  action?: string;
  /** Gateway method answering a public route itself (health, metrics, docs). */
  handler?: string;
  /** Params added by the route itself (e.g. which simulation). */
  fixed?: Record<string, string>;
  params: Record<string, ParamRule>;
  /** Params the gateway consumes and does not pass on (e.g. `format` of the QR route). */
  gatewayOnly?: string[];
  auth: AuthLevel;
  summary: string;
  tag: "accounts" | "simulation" | "webhooks" | "keys" | "cluster" | "operations";
  /** Success status. @default 200 */
  status?: 200 | 201 | 204;
  /** `Location` header of a 201 answer, from the action's result. @default none */
  location?: (result: any) => string | undefined;
  /** Bodies other than JSON, chosen by the gateway-only `format` param: media type, and the result
   * encoded (undefined answers JSON after all). @default JSON only */
  formats?: Record<string, { type: string; encode: (result: any) => Buffer | undefined }>;
  /** Broker counter incremented once per successful answer, labelled `format`. @default none */
  counter?: string;
  /** Success media types. @default ["application/json"] */
  produces?: string[];
  /** Error statuses the route documents beyond the common ones (401, 422, 429). */
  errors?: number[];
}

export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const PHONE_PATTERN = /^\+?[0-9]{6,16}$/;

const accountId: ParamRule = { in: "path", type: "string", pattern: ID_PATTERN, description: "Account id" };
const webhookId: ParamRule = {
  in: "path",
  type: "string",
  pattern: ID_PATTERN,
  description: "Webhook endpoint id",
};
const phoneNumber: ParamRule = {
  in: "body",
  type: "string",
  pattern: PHONE_PATTERN,
  description: "Phone number in international format, digits only (a leading + is allowed)",
};

export const ROUTES: readonly RouteSpec[] = [
  // ---- accounts ----
  {
    id: "createAccount",
    method: "POST",
    path: "/accounts",
    mount: "/api/v1",
    action: "accounts.create",
    params: {
      name: { in: "body", type: "string", min: 1, max: 100, optional: true, description: "Display name" },
      engine: {
        in: "body",
        type: "string",
        pattern: /^[a-z][a-z0-9_-]{0,31}$/,
        optional: true,
        description: "Engine (`webjs` or `simulated`); the node's ENGINE when absent",
      },
    },
    auth: "workspace",
    status: 201,
    location: (account) => (account?.id ? `/api/v1/accounts/${account.id}` : undefined),
    summary: "Create an account; its session starts at once (status `initializing`)",
    tag: "accounts",
  },
  {
    id: "listAccounts",
    method: "GET",
    path: "/accounts",
    mount: "/api/v1",
    action: "accounts.list",
    params: {},
    auth: "workspace",
    summary: "List the accounts of the workspace",
    tag: "accounts",
  },
  {
    id: "getAccount",
    method: "GET",
    path: "/accounts/:id",
    mount: "/api/v1",
    action: "accounts.get",
    params: { id: accountId },
    auth: "workspace",
    summary: "Get an account",
    tag: "accounts",
    errors: [404],
  },
  {
    id: "getQr",
    method: "GET",
    path: "/accounts/:id/qr",
    mount: "/api/v1",
    action: "accounts.qr",
    params: {
      id: accountId,
      format: {
        in: "query",
        type: "enum",
        values: ["json", "png"],
        optional: true,
        description: "`png` answers the QR image itself",
      },
    },
    gatewayOnly: ["format"],
    formats: {
      png: {
        type: "image/png",
        encode: (qr) =>
          typeof qr?.dataUrl === "string"
            ? Buffer.from(qr.dataUrl.replace(/^data:image\/png;base64,/, ""), "base64")
            : undefined,
      },
    },
    counter: METRICS.qrServed,
    auth: "workspace",
    summary: "Current QR code of a scanning account (409 when the account is not scanning)",
    tag: "accounts",
    produces: ["application/json", "image/png"],
    errors: [404, 409],
  },
  {
    id: "requestPairingCode",
    method: "POST",
    path: "/accounts/:id/pairing-code",
    mount: "/api/v1",
    action: "accounts.pairingCode",
    params: { id: accountId, phoneNumber },
    auth: "workspace",
    summary: "Request a pairing code (linking by phone number instead of QR)",
    tag: "accounts",
    errors: [404, 409],
  },
  {
    id: "restartAccount",
    method: "POST",
    path: "/accounts/:id/restart",
    mount: "/api/v1",
    action: "accounts.restart",
    params: { id: accountId },
    auth: "workspace",
    summary: "Restart the session of an account",
    tag: "accounts",
    errors: [404],
  },
  {
    id: "logoutAccount",
    method: "POST",
    path: "/accounts/:id/logout",
    mount: "/api/v1",
    action: "accounts.logout",
    params: { id: accountId },
    auth: "workspace",
    summary: "Unlink the device and delete its auth state",
    tag: "accounts",
    errors: [404],
  },
  {
    id: "deleteAccount",
    method: "DELETE",
    path: "/accounts/:id",
    mount: "/api/v1",
    action: "accounts.remove",
    params: { id: accountId },
    auth: "workspace",
    summary: "Stop the session and delete the account",
    tag: "accounts",
    errors: [404],
  },
  {
    id: "sendText",
    method: "POST",
    path: "/accounts/:id/messages",
    mount: "/api/v1",
    action: "accounts.sendText",
    params: {
      id: accountId,
      to: {
        in: "body",
        type: "string",
        min: 1,
        max: 128,
        description: "Recipient (phone number or chat id)",
      },
      text: { in: "body", type: "string", min: 1, max: 4096, description: "Message text" },
    },
    auth: "workspace",
    summary: "Send a text message from a connected account",
    tag: "accounts",
    errors: [404, 409],
  },
  // ---- simulated engine only ----
  ...(["scan", "disconnect", "logout", "message"] as const).map((action): RouteSpec => ({
    id: `simulate${action[0].toUpperCase()}${action.slice(1)}`,
    method: "POST",
    path: `/accounts/:id/simulate/${action}`,
    mount: "/api/v1",
    action: "accounts.simulate",
    fixed: { action },
    params:
      action === "scan"
        ? { id: accountId, phoneNumber }
        : action === "message"
          ? {
              id: accountId,
              from: {
                in: "body",
                type: "string",
                min: 1,
                max: 128,
                description: "Sender (phone number or chat id)",
              },
              text: { in: "body", type: "string", min: 1, max: 4096, description: "Message text" },
            }
          : { id: accountId },
    auth: "workspace",
    summary: `Simulated engine: ${
      {
        scan: "the phone scans the QR",
        disconnect: "the connection drops (the engine reconnects)",
        logout: "the phone unlinks the device",
        message: "a message arrives",
      }[action]
    } (422 on other engines)`,
    tag: "simulation",
    errors: [404, 409],
  })),
  // ---- event log (src/store/events-repo.ts) ----
  {
    id: "listEvents",
    method: "GET",
    path: "/events",
    mount: "/api/v1",
    action: "accounts.events",
    params: {
      after: {
        in: "query",
        type: "string",
        pattern: /^(0|[1-9][0-9]{0,14})$/,
        optional: true,
        description: "Cursor of the last event already seen (`0`, the default: from the oldest kept)",
      },
      // A string here: query values reach the gateway's check unconverted (accounts.events converts).
      limit: {
        in: "query",
        type: "string",
        pattern: /^[1-9][0-9]{0,3}$/,
        optional: true,
        description: "Events per page, 1–1000 (default 100)",
      },
    },
    auth: "workspace",
    summary: "The workspace's account events after a cursor, oldest first: `{items, nextCursor}`",
    tag: "accounts",
  },
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
    location: (webhook) => (webhook?.id ? `/api/v1/webhooks/${webhook.id}` : undefined),
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
    },
    auth: "workspace",
    summary: "Recent deliveries of an endpoint, newest first (100), with attempts and last error",
    tag: "webhooks",
    errors: [404],
  },
  // ---- keys (admin) ----
  {
    id: "createKey",
    method: "POST",
    path: "/workspaces/:workspaceId/keys",
    mount: "/api/v1",
    action: "api.createKey",
    params: { workspaceId: { in: "path", type: "string", pattern: ID_PATTERN, description: "Workspace id" } },
    auth: "admin",
    status: 201,
    location: (created) => `/api/v1/workspaces/${created?.workspaceId}/keys`,
    summary: "Create a workspace key; the key is shown once (`{key, keyId}`), only its hash is stored",
    tag: "keys",
  },
  {
    id: "listKeys",
    method: "GET",
    path: "/workspaces/:workspaceId/keys",
    mount: "/api/v1",
    action: "api.listKeys",
    params: { workspaceId: { in: "path", type: "string", pattern: ID_PATTERN, description: "Workspace id" } },
    auth: "admin",
    summary: "List the keys of a workspace (ids and dates, never the keys)",
    tag: "keys",
  },
  {
    id: "revokeKey",
    method: "DELETE",
    path: "/workspaces/:workspaceId/keys/:keyId",
    mount: "/api/v1",
    action: "api.revokeKey",
    params: {
      workspaceId: { in: "path", type: "string", pattern: ID_PATTERN, description: "Workspace id" },
      keyId: { in: "path", type: "string", pattern: ID_PATTERN, description: "Key id" },
    },
    auth: "admin",
    status: 204,
    summary: "Revoke a workspace key (effective on every gateway at once)",
    tag: "keys",
    errors: [404],
  },
  // ---- cluster (admin) ----
  {
    id: "listNodes",
    method: "GET",
    path: "/cluster/nodes",
    mount: "/api/v1",
    action: CLUSTER_ACTIONS.nodes,
    params: {},
    auth: "admin",
    summary: "Worker nodes: {nodeId, pid, host, services, capacity, sessions, draining}",
    tag: "cluster",
    errors: [503],
  },
  {
    id: "getPlacement",
    method: "GET",
    path: "/cluster/placement/:workspaceId",
    mount: "/api/v1",
    action: CLUSTER_ACTIONS.placement,
    params: { workspaceId: { in: "path", type: "string", pattern: ID_PATTERN, description: "Workspace id" } },
    auth: "admin",
    summary: "Owner of a workspace: {workspaceId, node, epoch}",
    tag: "cluster",
    errors: [404, 503],
  },
  {
    id: "drainNode",
    method: "POST",
    path: "/cluster/nodes/:nodeId/drain",
    mount: "/api/v1",
    action: CLUSTER_ACTIONS.drain,
    params: { nodeId: { in: "path", type: "string", min: 1, max: 128, description: "Node id" } },
    auth: "admin",
    summary: "Hand every workspace of a node to its next owner (rolling deploys drop no session)",
    tag: "cluster",
    errors: [404, 503],
  },
  {
    id: "rebalance",
    method: "POST",
    path: "/cluster/rebalance",
    mount: "/api/v1",
    action: CLUSTER_ACTIONS.rebalance,
    params: {
      max: {
        in: "body",
        type: "number",
        integer: true,
        min: 1,
        max: 1000,
        optional: true,
        description: "Workspaces to move at most",
      },
    },
    auth: "admin",
    summary: "Move workspaces whose preferred owner changed, a bounded number at a time",
    tag: "cluster",
    errors: [503],
  },
  // ---- operations (answered by the gateway itself) ----
  {
    id: "live",
    method: "GET",
    path: "/health/live",
    mount: "/",
    handler: "live",
    params: {},
    auth: "public",
    summary: "Liveness: the gateway process answers",
    tag: "operations",
  },
  {
    id: "ready",
    method: "GET",
    path: "/health/ready",
    mount: "/",
    handler: "ready",
    params: {},
    auth: "public",
    summary: "Readiness: NATS and MongoDB answer and at least one node runs `session` (503 otherwise)",
    tag: "operations",
    errors: [503],
  },
  {
    id: "metrics",
    method: "GET",
    path: "/metrics",
    mount: "/",
    handler: "metrics",
    params: {},
    auth: "public",
    summary: "Prometheus metrics: Moleculer's and Switchboard's",
    tag: "operations",
    produces: ["text/plain"],
  },
  {
    id: "openapi",
    method: "GET",
    path: "/api/openapi.json",
    mount: "/",
    handler: "openapi",
    params: {},
    auth: "public",
    summary: "This document",
    tag: "operations",
  },
  {
    id: "docs",
    method: "GET",
    path: "/api/docs",
    mount: "/",
    handler: "docs",
    params: {},
    auth: "public",
    summary: "This document as a readable page",
    tag: "operations",
    produces: ["text/html"],
  },
];

export const ROUTES_BY_ID: ReadonlyMap<string, RouteSpec> = new Map(ROUTES.map((r) => [r.id, r]));

/** The full URL path of a route (`/api/v1/accounts/:id`). */
export function fullPath(route: RouteSpec): string {
  return route.mount === "/" ? route.path : `${route.mount}${route.path}`;
}

/** The fastest-validator schema of a route's params (plus `workspaceId` for workspace routes). */
export function validatorSchema(route: RouteSpec): Record<string, unknown> {
  const schema: Record<string, unknown> = {};
  for (const [name, rule] of Object.entries(route.params)) {
    const { in: _in, description: _d, ...fv } = rule;
    schema[name] = fv;
  }
  if (route.auth === "workspace") schema.workspaceId = { type: "string", pattern: ID_PATTERN };
  return schema;
}
