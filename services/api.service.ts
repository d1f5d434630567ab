// The `api` service (DESIGN.md, "Interfaces"): moleculer-web on configOf(broker).port serving
//   /api/v1/*            the REST contract, aliases generated from src/gateway/routes.ts
//   /api/openapi.json    the OpenAPI 3.1 document generated from the same table; /api/docs renders it
//   /health/live|ready   liveness / readiness (NATS, MongoDB, a node running `session`)
//   /metrics             Prometheus text (src/gateway/metrics.ts)
// and, when "io" is among the node's services, Socket.IO on the same HTTP server (mixins/io.mixin.ts).
//
// Request pipeline of /api/v1: JSON body (≤ 64 kB) → key (Bearer or X-API-Key) and per-key rate limit
// → moleculer-web resolves the alias's endpoint → authorization: admin check, the route's params picked
// and validated, `workspaceId` forced to the key's workspace → the action → errors as
// {name, message, code, type, data} with a stable type (src/errors.ts), never a 5xx for bad input.
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { fileURLToPath } from "node:url";
import type { Context, Service, ServiceSchema } from "moleculer";
import { Errors } from "moleculer";
import ApiGateway from "moleculer-web";
import { ioMixin } from "../mixins/io.mixin.ts";
import { mongoMixin } from "../mixins/mongo.mixin.ts";
import { configOf, type Config } from "../src/config.ts";
import {
  BadRequestError,
  ERR_BAD_JSON,
  ERR_BAD_REQUEST,
  ERR_INTERNAL,
  ERR_SERVICE_UNAVAILABLE,
  ERR_UNSUPPORTED_MEDIA_TYPE,
  ForbiddenError,
  PayloadTooLargeError,
  RateLimitedError,
  RouteNotFoundError,
  UnauthorizedError,
  ValidationError,
} from "../src/errors.ts";
import { KeyStore, presentedKey, type Caller } from "../src/gateway/keys.ts";
import {
  METRICS,
  accountFamilies,
  clusterFamilies,
  formatFamilies,
  placementFamily,
  registryText,
} from "../src/gateway/metrics.ts";
import { buildOpenApi, renderDocsHtml } from "../src/gateway/openapi.ts";
import { RateLimiter } from "../src/gateway/rate-limit.ts";
import { ID_PATTERN, ROUTES, ROUTES_BY_ID, validatorSchema, type RouteSpec } from "../src/gateway/routes.ts";
import { COLLECTIONS } from "../src/store/mongo.ts";

/** Largest JSON body accepted; larger is a 413 PAYLOAD_TOO_LARGE. */
export const BODY_LIMIT = "64kb";

type Req = IncomingMessage & {
  $ctx: Context<any, any>;
  $params: Record<string, unknown>;
  $alias?: { routeId?: string; action?: string };
  $route?: unknown;
  $caller?: Caller;
  $format?: string;
  parsedUrl?: string;
  originalUrl?: string;
};
type Res = ServerResponse;

/** The error body of every failed request (DESIGN.md, "Interfaces"). */
export interface ContractError {
  name: string;
  message: string;
  code: number;
  type: string;
  data?: unknown;
}

interface ApiThis extends Service {
  server: Server;
  keys?: KeyStore;
  limiter: RateLimiter;
  validators: Map<string, (params: unknown) => true | { message: string; field: string; type: string }[]>;
  openApi: Record<string, unknown>;
  docsHtml: string;
  db?: import("mongodb").Db;
  collections: Record<string, import("mongodb").Collection<any>>;
  sendError(req: Req, res: Res, err: unknown): void;
  authenticateRequest(req: Req, res: Res): Promise<void>;
  resolveAlias(url: string, method: string): unknown;
  toContractError(req: Req, err: unknown): ContractError;
  readiness(): Promise<{ ready: boolean; checks: Record<string, unknown> }>;
  metricsText(): Promise<string>;
}

function corsSettings(cfg: Config) {
  const origins = cfg.corsOrigins
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (origins.length === 0) return undefined;
  return {
    origin: origins.includes("*") ? "*" : origins,
    methods: ["GET", "POST", "DELETE", "OPTIONS"],
    allowedHeaders: ["Authorization", "X-API-Key", "Content-Type"],
    exposedHeaders: ["Retry-After", "X-Request-ID", "X-RateLimit-Remaining"],
    maxAge: 600,
  };
}

/** The aliases of one mount point, generated from the route table. */
function aliasesOf(mount: RouteSpec["mount"]): Record<string, unknown> {
  const aliases: Record<string, unknown> = {};
  for (const route of ROUTES.filter((r) => r.mount === mount)) {
    const key = `${route.method} ${route.path}`;
    if (route.action) aliases[key] = { action: route.action, routeId: route.id };
    else {
      const handler = route.handler!;
      aliases[key] = function (this: ApiThis, req: Req, res: Res) {
        const answer = (this as unknown as Record<string, (req: Req, res: Res) => Promise<void>>)[handler];
        answer.call(this, req, res).catch((err: unknown) => this.sendError(req, res, err));
      };
    }
  }
  return aliases;
}

function send(
  res: Res,
  status: number,
  type: string,
  body: string | Buffer,
  headers: Record<string, string> = {},
) {
  res.writeHead(status, { "Content-Type": type, "Content-Length": Buffer.byteLength(body), ...headers });
  res.end(body);
}

/** Answers a request Node's HTTP parser rejected (oversized headers, garbage) with a JSON error. */
function onClientError(err: NodeJS.ErrnoException, socket: Socket) {
  if (!socket.writable || (err as { code?: string }).code === "ECONNRESET") return socket.destroy();
  const tooLarge = err.code === "HPE_HEADER_OVERFLOW";
  const status = tooLarge ? 431 : 400;
  const body = JSON.stringify({
    name: "BadRequestError",
    message: tooLarge ? "Request headers too large" : "Malformed HTTP request",
    code: status,
    type: tooLarge ? "HEADERS_TOO_LARGE" : ERR_BAD_REQUEST,
    data: { reason: err.code },
  });
  socket.end(
    `HTTP/1.1 ${status} ${tooLarge ? "Request Header Fields Too Large" : "Bad Request"}\r\n` +
      `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Connection: close\r\n\r\n${body}`,
  );
}

/** body-parser failures (wrapped by moleculer-web, `type` kept) → the contract's stable types. */
const BODY_ERRORS: Record<string, (e: Errors.MoleculerError) => Errors.MoleculerError> = {
  "entity.parse.failed": (e) => new BadRequestError(`Invalid JSON body: ${e.message}`, ERR_BAD_JSON),
  "entity.too.large": () => new PayloadTooLargeError(BODY_LIMIT),
  "charset.unsupported": (e) => new BadRequestError(e.message, ERR_UNSUPPORTED_MEDIA_TYPE, undefined, 415),
  "encoding.unsupported": (e) => new BadRequestError(e.message, ERR_UNSUPPORTED_MEDIA_TYPE, undefined, 415),
};

export function createApiService(cfg: Config): ServiceSchema {
  const cors = corsSettings(cfg);
  const withIo = cfg.services.includes("io");
  const corsEnabled = cors !== undefined;

  const schema: ServiceSchema<any, any, any, ApiThis> = {
    name: "api",
    mixins: [
      ApiGateway as unknown as Partial<ServiceSchema>,
      mongoMixin({ collections: [COLLECTIONS.apiKeys] }),
      // Socket.IO on the same HTTP server when this node runs "io" (it verifies keys with `this.keys`).
      ...(withIo ? [ioMixin()] : []),
    ],

    settings: {
      port: cfg.port,
      ip: "0.0.0.0",
      cors,
      // The dashboard (public/: plain HTML/JS/CSS, no build step) for requests no route answers.
      assets: { folder: fileURLToPath(new URL("../public", import.meta.url)) },
      logRequest: "debug",
      logResponse: "debug",
      logRouteRegistration: "debug",
      log4XXResponses: false,
      // moleculer-web's error writer is replaced by `onError` below (one JSON shape for every failure).
      onError(this: ApiThis, req: Req, res: Res, err: unknown) {
        this.sendError(req, res, err);
      },
      routes: [
        {
          name: "rest",
          path: "/api/v1",
          mappingPolicy: "restrict",
          aliases: aliasesOf("/api/v1"),
          bodyParsers: { json: { limit: BODY_LIMIT, strict: true }, urlencoded: false },
          use: [
            function (this: ApiThis, req: Req, res: Res, next: (err?: unknown) => void) {
              this.authenticateRequest(req, res).then(() => next(), next);
            },
          ],
          authorization: true,
          onAfterCall(this: ApiThis, ctx: Context<any, any>, _route: unknown, req: Req, res: Res, data: any) {
            const spec = ROUTES_BY_ID.get(req.$alias?.routeId ?? "");
            if (spec?.id === "getQr") {
              const format = req.$format ?? "json";
              this.broker.metrics.increment(METRICS.qrServed, { format });
              if (format === "png" && data && typeof data.dataUrl === "string") {
                ctx.meta.$responseType = "image/png";
                return Buffer.from(data.dataUrl.replace(/^data:image\/png;base64,/, ""), "base64");
              }
            }
            if (spec?.status === 201) {
              res.statusCode = 201;
              ctx.meta.$statusCode = 201;
              if (spec.id === "createAccount" && data?.id) ctx.meta.$location = `/api/v1/accounts/${data.id}`;
              if (spec.id === "createWebhook" && data?.id) ctx.meta.$location = `/api/v1/webhooks/${data.id}`;
              if (spec.id === "createKey")
                ctx.meta.$location = `/api/v1/workspaces/${data?.workspaceId}/keys`;
            } else if (spec?.status === 204) {
              ctx.meta.$statusCode = 204;
              return null;
            }
            return data;
          },
        },
        {
          name: "operations",
          path: "/",
          mappingPolicy: "restrict",
          aliases: aliasesOf("/"),
          bodyParsers: false,
        },
      ],
    },

    actions: {
      // moleculer-web's route-management actions must not be reachable from the bus.
      listAliases: false,
      addRoute: false,
      removeRoute: false,

      /** Creates a workspace key; the key is returned once and stored hashed. */
      createKey: {
        params: { workspaceId: { type: "string", pattern: ID_PATTERN } },
        async handler(this: ApiThis, ctx: Context<{ workspaceId: string }>) {
          return this.keys!.create(ctx.params.workspaceId);
        },
      },
      listKeys: {
        params: { workspaceId: { type: "string", pattern: ID_PATTERN } },
        async handler(this: ApiThis, ctx: Context<{ workspaceId: string }>) {
          return this.keys!.list(ctx.params.workspaceId);
        },
      },
      revokeKey: {
        params: {
          workspaceId: { type: "string", pattern: ID_PATTERN },
          keyId: { type: "string", pattern: ID_PATTERN },
        },
        async handler(this: ApiThis, ctx: Context<{ workspaceId: string; keyId: string }>) {
          await this.keys!.revoke(ctx.params.workspaceId, ctx.params.keyId);
          // Every gateway caches verified keys briefly: make them all forget this one now.
          await this.broker.broadcast("apikeys.revoked", { keyId: ctx.params.keyId });
          return null;
        },
      },
    },

    events: {
      "apikeys.revoked"(this: ApiThis, ctx: Context<{ keyId: string }>) {
        this.keys?.forget(ctx.params.keyId);
      },
      /** A worker lost without a graceful stop: its workspaces fail over to the survivors. */
      "$node.disconnected"(
        this: ApiThis,
        ctx: Context<{ node: { services?: { name: string }[] }; unexpected: boolean }>,
      ) {
        const { node, unexpected } = ctx.params;
        if (unexpected && (node.services ?? []).some((s) => s.name === "session")) {
          this.broker.metrics.increment(METRICS.failovers);
        }
      },
    },

    methods: {
      /** `use` middleware of /api/v1: who is calling, and may they make one more request now. */
      async authenticateRequest(this: ApiThis, req: Req, res: Res) {
        if (req.method === "OPTIONS") {
          // A CORS preflight carries no key; moleculer-web answers it (204) after this middleware. Any
          // other OPTIONS would be routed as the alias of its Access-Control-Request-Method: refuse it.
          if (req.headers["access-control-request-method"] && corsEnabled) return;
          throw new RouteNotFoundError("OPTIONS", (req.originalUrl ?? req.url ?? "").split("?")[0]);
        }
        const presented = presentedKey(req.headers);
        if (!presented)
          throw new UnauthorizedError("Missing API key: send Authorization: Bearer <key> or X-API-Key");
        if (!this.keys)
          throw new Errors.MoleculerRetryableError("Gateway is starting", 503, ERR_SERVICE_UNAVAILABLE);
        if (presented.length > 512) throw new UnauthorizedError("Invalid API key");
        const caller = await this.keys.authenticate(presented);
        if (!caller) throw new UnauthorizedError("Invalid API key");
        const decision = this.limiter.take(caller.keyId);
        if (this.limiter.perMinute > 0) res.setHeader("X-RateLimit-Remaining", String(decision.remaining));
        if (!decision.allowed) {
          res.setHeader("Retry-After", String(decision.retryAfterSec));
          throw new RateLimitedError(decision.retryAfterSec, this.limiter.perMinute);
        }
        req.$caller = caller;
        // Admin routes are refused before anything about them (e.g. whether their service runs) shows.
        const found = this.resolveAlias(req.parsedUrl ?? "", req.method ?? "GET") as
          false | { alias: { routeId?: string } };
        const spec = found ? ROUTES_BY_ID.get(found.alias.routeId ?? "") : undefined;
        if (spec?.auth === "admin" && caller.kind !== "admin")
          throw new ForbiddenError("This route needs the admin key");
      },

      /** moleculer-web's authorization hook: runs after the alias is resolved, before the call. Picks the
       * route's declared params only, validates them and sets `workspaceId` from the key. */
      async authorize(this: ApiThis, ctx: Context<any, any>, _route: unknown, req: Req) {
        const spec = ROUTES_BY_ID.get(req.$alias?.routeId ?? "");
        const caller = req.$caller;
        if (!spec || !caller) throw new UnauthorizedError();
        if (spec.auth === "admin" && caller.kind !== "admin") {
          throw new ForbiddenError("This route needs the admin key");
        }
        const raw = req.$params ?? {};
        const params: Record<string, unknown> = {};
        for (const name of Object.keys(spec.params)) if (raw[name] !== undefined) params[name] = raw[name];
        if (spec.auth === "workspace") {
          params.workspaceId = caller.kind === "workspace" ? caller.workspaceId : raw.workspaceId;
          if (params.workspaceId === undefined) {
            throw new ValidationError(
              "The admin key must name the workspace (workspaceId in query or body)",
              [{ field: "workspaceId", type: "required", message: "The 'workspaceId' field is required." }],
            );
          }
        }
        const check = this.validators.get(spec.id)!;
        const result = check(params);
        if (result !== true) throw new ValidationError("Parameters validation error", result);
        for (const name of spec.gatewayOnly ?? []) {
          if (name === "format") req.$format = params.format as string | undefined;
          delete params[name];
        }
        Object.assign(params, spec.fixed);
        req.$params = params;
        if (typeof params.workspaceId === "string") ctx.meta.workspaceId = params.workspaceId;
        ctx.meta.keyId = caller.keyId;
      },

      /** Every error of the gateway in the contract's shape, with a stable `type`. Errors from other
       * nodes arrive as plain Errors carrying code/type/data (only Moleculer's own classes are rebuilt). */
      toContractError(this: ApiThis, req: Req, err: unknown): ContractError {
        const web = (ApiGateway as unknown as { Errors: Record<string, any> }).Errors;
        const shape = (e: Errors.MoleculerError): ContractError => ({
          name: e.name,
          message: e.message,
          code: e.code,
          type: e.type,
          data: e.data,
        });
        if (err instanceof web.NotFoundError) {
          return shape(
            new RouteNotFoundError(req.method ?? "GET", (req.originalUrl ?? req.url ?? "").split("?")[0]),
          );
        }
        if (err instanceof web.ServiceUnavailableError) {
          const spec = ROUTES_BY_ID.get(req.$alias?.routeId ?? "");
          const action = spec?.action ?? "";
          return shape(
            new Errors.MoleculerRetryableError(
              `No node can serve '${action}' right now`,
              503,
              ERR_SERVICE_UNAVAILABLE,
              {
                action,
              },
            ),
          );
        }
        const e = err as {
          name?: unknown;
          message?: unknown;
          code?: unknown;
          type?: unknown;
          data?: unknown;
        };
        if (err instanceof Error && typeof e.code === "number" && e.code >= 400 && e.code <= 599) {
          const mapped = typeof e.type === "string" ? BODY_ERRORS[e.type] : undefined;
          if (mapped) return shape(mapped(err as Errors.MoleculerError));
          if (typeof e.type === "string" && /^[a-z]+\.[a-z.]+$/.test(e.type)) {
            // Other body-parser failures (aborted request, bad length…): the client's fault.
            return shape(new BadRequestError(err.message, ERR_BAD_REQUEST));
          }
          return {
            name: err.name,
            message: err.message,
            code: e.code,
            type:
              typeof e.type === "string" && e.type ? e.type : e.code >= 500 ? ERR_INTERNAL : ERR_BAD_REQUEST,
            data: e.data,
          };
        }
        this.logger.error("Unexpected gateway error", err);
        return { name: "InternalError", message: "Internal error", code: 500, type: ERR_INTERNAL };
      },

      /** moleculer-web's top-level error hook (it would log every 5xx, even an expected 503). */
      errorHandler(this: ApiThis, req: Req, res: Res, err: unknown) {
        this.sendError(req, res, err);
      },

      sendError(this: ApiThis, req: Req, res: Res, err: unknown) {
        const e = this.toContractError(req, err);
        if (res.headersSent) {
          if (!res.writableEnded) res.end();
          return;
        }
        const code = e.code;
        if (code >= 500 && code !== 501 && code !== 503) this.logger.error(`${req.method} ${req.url}:`, err);
        const body = JSON.stringify({ name: e.name, message: e.message, code, type: e.type, data: e.data });
        const headers: Record<string, string> = {};
        if (e.type === "RATE_LIMITED")
          headers["Retry-After"] = String((e.data as { retryAfter: number }).retryAfter);
        send(res, code, "application/json; charset=utf-8", body, headers);
      },

      // ---- operations routes (answered here, never through the bus: they describe this gateway) ----
      async live(this: ApiThis, _req: Req, res: Res) {
        send(
          res,
          200,
          "application/json; charset=utf-8",
          JSON.stringify({ live: true, node: this.broker.nodeID }),
        );
      },

      async ready(this: ApiThis, _req: Req, res: Res) {
        const report = await this.readiness();
        send(res, report.ready ? 200 : 503, "application/json; charset=utf-8", JSON.stringify(report));
      },

      async readiness(this: ApiThis) {
        const timeout = <T>(p: Promise<T>, ms: number) =>
          Promise.race([
            p,
            new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`no answer in ${ms} ms`)), ms)),
          ]);
        const check = async (fn: () => Promise<unknown>) => {
          try {
            await timeout(fn(), 1500);
            return { ok: true };
          } catch (err) {
            return { ok: false, error: (err as Error).message };
          }
        };
        const transit = this.broker.transit as any;
        const [nats, mongo] = await Promise.all([
          check(async () => {
            if (!transit?.connected) throw new Error("transporter not connected");
            // A round trip to the NATS server (nats.js `flush` is a PING/PONG).
            if (typeof transit.tx?.client?.flush === "function") await transit.tx.client.flush();
          }),
          check(async () => {
            if (!this.db) throw new Error("not connected");
            await this.db.command({ ping: 1 });
          }),
        ]);
        const sessionNodes = [
          ...new Set(
            this.broker.registry
              .getServiceList({ onlyAvailable: true, skipInternal: true })
              .filter((s: { name: string }) => s.name === "session")
              .map((s) => (s as unknown as { nodeID: string }).nodeID),
          ),
        ];
        const workers = { ok: sessionNodes.length > 0, nodes: sessionNodes };
        return { ready: nats.ok && mongo.ok && workers.ok, checks: { nats, mongo, workers } };
      },

      async metrics(this: ApiThis, _req: Req, res: Res) {
        send(res, 200, "text/plain; version=0.0.4; charset=utf-8", await this.metricsText());
      },

      async metricsText(this: ApiThis) {
        const computed = this.db ? await accountFamilies(this.db).catch(() => []) : [];
        // What the nodes register themselves wins over what the gateway computes under the same name.
        const cluster = await clusterFamilies(this.broker, new Set([METRICS.sessions, METRICS.placements]));
        const fromNodes = new Set(cluster.filter((f) => f.samples.length > 0).map((f) => f.name));
        const placements = placementFamily(this.broker);
        const families = [
          ...computed.filter((f) => !fromNodes.has(f.name) && !(placements && f.name === placements.name)),
          ...(placements ? [placements] : []),
          ...cluster,
        ];
        return `${registryText(this.broker)}\n${formatFamilies(families)}`;
      },

      async openapi(this: ApiThis, _req: Req, res: Res) {
        send(res, 200, "application/json; charset=utf-8", JSON.stringify(this.openApi));
      },

      async docs(this: ApiThis, _req: Req, res: Res) {
        send(res, 200, "text/html; charset=utf-8", this.docsHtml);
      },
    },

    created(this: ApiThis) {
      const config = configOf(this.broker);
      this.limiter = new RateLimiter(config.rateLimitPerMinute);
      this.validators = new Map();
      for (const route of ROUTES) {
        this.validators.set(route.id, this.broker.validator!.compile(validatorSchema(route)) as any);
      }
      this.openApi = buildOpenApi();
      this.docsHtml = renderDocsHtml(this.openApi);
      this.broker.metrics.register({
        type: "counter",
        name: METRICS.qrServed,
        labelNames: ["format"],
        description: "QR codes answered by GET /api/v1/accounts/:id/qr",
      });
      this.broker.metrics.register({
        type: "counter",
        name: METRICS.failovers,
        description:
          "Worker nodes lost without a graceful stop (their workspaces fail over), seen by this gateway",
      });
      this.server.removeAllListeners("clientError");
      this.server.on("clientError", onClientError);
    },

    async started(this: ApiThis) {
      this.keys = new KeyStore(this.collections[COLLECTIONS.apiKeys], {
        adminKey: configOf(this.broker).adminApiKey,
      });
    },
  };
  return schema as ServiceSchema;
}

/** The bound port of a started gateway (PORT=0 picks a free one). */
export function boundPort(service: Service): number {
  const addr = (service as unknown as { server: Server }).server.address();
  return typeof addr === "object" && addr ? addr.port : 0;
}

export default createApiService;
