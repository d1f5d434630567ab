// The OpenAPI 3.1 document of the gateway, generated from the route table (src/gateway/routes.ts) —
// the same definitions the aliases come from (rendered as a page by src/gateway/docs-page.ts).
import { STATUSES } from "../lifecycle/states.ts";
import { ROUTES, fullPath, type ParamRule, type RouteSpec } from "./routes.ts";

export type JsonSchema = Record<string, unknown>;

export function jsonSchemaOf(rule: ParamRule): JsonSchema {
  const out: JsonSchema = {};
  switch (rule.type) {
    case "string":
      out.type = "string";
      if (rule.min !== undefined) out.minLength = rule.min;
      if (rule.max !== undefined) out.maxLength = rule.max;
      if (rule.pattern) out.pattern = rule.pattern.source;
      if (rule.documented) out.enum = [...rule.documented];
      break;
    case "object":
      Object.assign(out, rule.schema);
      break;
    case "enum":
      out.type = "string";
      out.enum = [...rule.values];
      break;
    case "number":
      out.type = rule.integer ? "integer" : "number";
      if (rule.min !== undefined) out.minimum = rule.min;
      if (rule.max !== undefined) out.maximum = rule.max;
      break;
    case "boolean":
      out.type = "boolean";
      break;
    case "array":
      out.type = "array";
      out.items =
        rule.items.type === "enum"
          ? { type: "string", enum: [...rule.items.values] }
          : { type: "string", minLength: rule.items.min, maxLength: rule.items.max };
      if (rule.min !== undefined) out.minItems = rule.min;
      if (rule.max !== undefined) out.maxItems = rule.max;
      break;
  }
  if (rule.description) out.description = rule.description;
  return out;
}

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: "Malformed request (bad JSON, undecodable path)",
  401: "Missing or invalid API key",
  403: "The key may not do this (admin routes)",
  404: "Not found (another workspace's account is also a 404)",
  409: "The account is not in a state that allows this",
  413: "Body larger than the limit",
  415: "A body that is not JSON (another Content-Type), not UTF-8 (another charset), or a compressed one",
  422: "Validation error",
  429: "Rate limit of the key exceeded (see Retry-After)",
  501: "Not implemented",
  503: "Not ready / no node can serve the workspace right now",
  504: "SEND_DEADLINE_EXCEEDED: a send without an Idempotency-Key not handed to WhatsApp within half of REQUEST_TIMEOUT_MS; it was not sent and never will be, so sending it again is safe",
};

const ACCOUNT_SCHEMA: JsonSchema = {
  type: "object",
  required: ["id", "workspaceId", "sessionId", "name", "engine", "status", "createdAt", "updatedAt"],
  properties: {
    id: { type: "string" },
    workspaceId: { type: "string" },
    sessionId: { type: "string" },
    name: { type: "string" },
    engine: { type: "string" },
    status: { type: "string", enum: [...STATUSES] },
    desiredState: { type: "string", enum: ["running", "stopped"] },
    reason: { type: "string" },
    message: { type: "string" },
    phoneNumber: { type: "string" },
    node: { type: "string" },
    createdAt: { type: "string", format: "date-time" },
    updatedAt: { type: "string", format: "date-time" },
  },
};

const WEBHOOK_SCHEMA: JsonSchema = {
  type: "object",
  properties: {
    id: { type: "string" },
    workspaceId: { type: "string" },
    url: { type: "string" },
    events: { type: "array", items: { type: "string" } },
    enabled: { type: "boolean" },
    createdAt: { type: "string", format: "date-time" },
    updatedAt: { type: "string", format: "date-time" },
    secret: { type: "string", description: "Only in the answer to create" },
    secretUnreadable: {
      type: "boolean",
      enum: [true],
      description:
        "Present (true) only when no configured key (SECRETS_KEY, SECRETS_KEY_PREVIOUS) opens the " +
        "endpoint's stored secret: its events are recorded, its deliveries wait until the key that " +
        "sealed it is configured again; or delete it and create it anew",
    },
  },
};

const WEBHOOK_DELIVERY_SCHEMA: JsonSchema = {
  type: "object",
  properties: {
    id: { type: "string" },
    eventId: { type: "string", description: "X-Switchboard-Event-Id: deduplicate by it" },
    endpointId: { type: "string" },
    accountId: { type: "string" },
    event: { type: "string" },
    seq: { type: "integer", description: "Position in the account's queue for this endpoint" },
    status: { type: "string", enum: ["pending", "delivered", "dead"] },
    attempts: { type: "integer" },
    nextAttemptAt: { type: "string", format: "date-time" },
    lastError: { type: ["string", "null"] },
    lastStatusCode: { type: ["integer", "null"] },
    createdAt: { type: "string", format: "date-time" },
    deliveredAt: { type: ["string", "null"], format: "date-time" },
    payload: { type: "object" },
  },
};

const SEND_RESULT: JsonSchema = {
  type: "object",
  required: ["id", "status", "at"],
  properties: {
    id: { type: ["string", "null"], description: "WhatsApp's message id (null until sent)" },
    status: { type: "string", enum: ["pending", "sent", "failed", "uncertain"] },
    at: { type: "string", format: "date-time" },
    duplicate: { type: "boolean", description: "A repeat of the first answer for this idempotency key" },
    error: { type: "object", properties: { type: { type: "string" }, message: { type: "string" } } },
  },
};

const MESSAGE_STATUS: JsonSchema = {
  type: "object",
  required: ["id", "accountId", "status", "at"],
  properties: {
    id: { type: "string" },
    accountId: { type: "string" },
    to: { type: "string" },
    type: { type: "string" },
    status: { type: "string", enum: ["sent", "delivered", "read", "played", "failed"] },
    at: { type: "string", format: "date-time", description: "When the message reached this status" },
    sentAt: { type: "string", format: "date-time" },
  },
};

const RESPONSE_SCHEMAS: Record<string, JsonSchema> = {
  createWebhook: WEBHOOK_SCHEMA,
  getWebhook: WEBHOOK_SCHEMA,
  deleteWebhook: WEBHOOK_SCHEMA,
  listWebhooks: { type: "object", properties: { items: { type: "array", items: WEBHOOK_SCHEMA } } },
  listWebhookDeliveries: {
    type: "object",
    properties: {
      items: { type: "array", items: WEBHOOK_DELIVERY_SCHEMA },
      nextCursor: {
        type: ["string", "null"],
        description: "Cursor of the next (older) page; null on the last",
      },
    },
  },
  createAccount: { $ref: "#/components/schemas/Account" },
  getAccount: { $ref: "#/components/schemas/Account" },
  listAccounts: {
    type: "object",
    properties: {
      items: { type: "array", items: { $ref: "#/components/schemas/Account" } },
      nextCursor: { type: ["string", "null"], description: "Cursor of the next page; null on the last" },
    },
  },
  getQr: {
    type: "object",
    properties: {
      qr: { type: "string" },
      dataUrl: { type: "string" },
      seq: { type: "integer" },
      expiresAt: { type: "integer", description: "Epoch ms" },
    },
  },
  requestPairingCode: { type: "object", properties: { code: { type: "string" } } },
  sendText: SEND_RESULT,
  getMessage: MESSAGE_STATUS,
  createKey: {
    type: "object",
    properties: {
      key: { type: "string", description: "Shown once" },
      keyId: { type: "string" },
      workspaceId: { type: "string" },
    },
  },
  listKeys: {
    type: "object",
    properties: {
      items: {
        type: "array",
        items: {
          type: "object",
          properties: { keyId: { type: "string" }, createdAt: { type: "string", format: "date-time" } },
        },
      },
    },
  },
  listNodes: {
    type: "object",
    properties: {
      items: {
        type: "array",
        items: {
          type: "object",
          properties: {
            nodeId: { type: "string" },
            pid: { type: "integer" },
            host: { type: "string" },
            services: { type: "array", items: { type: "string" } },
            capacity: { type: "integer" },
            sessions: { type: "integer" },
            draining: { type: "boolean" },
          },
        },
      },
    },
  },
  getPlacement: {
    type: "object",
    properties: { workspaceId: { type: "string" }, node: { type: "string" }, epoch: { type: "integer" } },
  },
};

function openApiPath(route: RouteSpec): string {
  return fullPath(route).replace(/:([A-Za-z0-9_]+)/g, "{$1}");
}

function operationOf(route: RouteSpec): JsonSchema {
  const parameters: JsonSchema[] = [];
  const bodyProps: Record<string, JsonSchema> = {};
  const bodyRequired: string[] = [];
  for (const [name, rule] of Object.entries(route.params)) {
    if (rule.in === "body") {
      bodyProps[name] = jsonSchemaOf(rule);
      if (!rule.optional) bodyRequired.push(name);
    } else {
      parameters.push({
        name: rule.header ?? name,
        in: rule.in,
        required: rule.in === "path" || !rule.optional,
        schema: jsonSchemaOf(rule),
        ...(rule.description ? { description: rule.description } : {}),
      });
    }
  }
  if (route.auth === "workspace") {
    parameters.push({
      name: "workspaceId",
      in: "query",
      required: false,
      schema: { type: "string", pattern: "^[A-Za-z0-9_-]{1,64}$" },
      description:
        "Admin key only (may also be in the body); a workspace key always acts on its own workspace",
    });
  }
  const status = String(route.status ?? 200);
  const produces = route.produces ?? ["application/json"];
  const content: Record<string, JsonSchema> = {};
  for (const type of produces) {
    content[type] =
      type === "application/json"
        ? { schema: RESPONSE_SCHEMAS[route.id] ?? { type: "object" } }
        : type === "image/png"
          ? { schema: { type: "string", contentMediaType: "image/png" } }
          : { schema: { type: "string" } };
  }
  const responses: Record<string, JsonSchema> = {
    [status]: status === "204" ? { description: "Done" } : { description: "Success", content },
  };
  const errorCodes = new Set<number>(route.errors ?? []);
  if (route.auth !== "public") [401, 422, 429].forEach((c) => errorCodes.add(c));
  if (route.auth === "admin") errorCodes.add(403);
  if (Object.values(route.params).some((p) => p.in === "body"))
    [400, 413, 415].forEach((c) => errorCodes.add(c));
  for (const code of [...errorCodes].sort()) {
    responses[String(code)] = {
      description: ERROR_DESCRIPTIONS[code] ?? "Error",
      content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
    };
  }
  const op: JsonSchema = {
    operationId: route.id,
    summary: route.summary,
    tags: [route.tag],
    parameters,
    responses,
    security: route.auth === "public" ? [] : [{ bearerKey: [] }, { headerKey: [] }],
  };
  if (route.auth !== "public") op["x-auth"] = route.auth;
  if (route.action) op["x-action"] = route.action;
  if (Object.keys(bodyProps).length > 0) {
    op.requestBody = {
      required: bodyRequired.length > 0,
      content: {
        "application/json": {
          schema: { type: "object", properties: bodyProps, required: bodyRequired },
        },
      },
    };
  }
  return op;
}

/** The OpenAPI 3.1 document of every route in the table. */
export function buildOpenApi(version = "0.1.0"): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const route of ROUTES) {
    const p = (paths[openApiPath(route)] ??= {});
    p[route.method.toLowerCase()] = operationOf(route);
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Switchboard API",
      version,
      description:
        "Many WhatsApp Web sessions across a Moleculer cluster. Workspace keys see only their workspace; " +
        "the admin key (ADMIN_API_KEY) manages keys and the cluster. Errors are " +
        "`{name, message, code, type, data}` with a stable `type`.",
    },
    servers: [{ url: "/" }],
    tags: [
      { name: "accounts", description: "WhatsApp accounts of a workspace" },
      { name: "chats", description: "Chats, messages, contacts and groups of a connected account" },
      { name: "simulation", description: "Simulated engine only" },
      { name: "webhooks", description: "Signed, retried delivery of account events to your backend" },
      { name: "keys", description: "Workspace API keys (admin)" },
      { name: "cluster", description: "Cluster administration (admin)" },
      { name: "operations", description: "Health, metrics, documentation" },
    ],
    paths,
    components: {
      securitySchemes: {
        bearerKey: { type: "http", scheme: "bearer", description: "Authorization: Bearer <key>" },
        headerKey: { type: "apiKey", in: "header", name: "X-API-Key" },
      },
      schemas: {
        Account: ACCOUNT_SCHEMA,
        Error: {
          type: "object",
          required: ["name", "message", "code", "type"],
          properties: {
            name: { type: "string" },
            message: { type: "string" },
            code: { type: "integer" },
            type: { type: "string", description: "Stable machine-readable error type" },
            data: {},
          },
        },
      },
    },
  };
}
