// The `api` service (DESIGN.md, "Interfaces"): moleculer-web on configOf(broker).port serving
//   /api/v1/*            the REST contract, aliases generated from src/gateway/routes.ts
//   /api/openapi.json    the OpenAPI 3.1 document generated from the same table; /api/docs renders it
//   /health/live|ready   liveness / readiness (src/gateway/health.ts)
//   /metrics             Prometheus text (src/gateway/metrics.ts)
// Socket.IO shares its HTTP server when the node also runs `io` (services/io.service.ts).
//
// Request pipeline of /api/v1: JSON body (≤ 64 kB; routes carrying media: MEDIA_MAX_BYTES in base64) → key and per-key rate limit (src/gateway/auth.ts)
// → moleculer-web resolves the alias's endpoint (none: 404 ROUTE_NOT_FOUND) → authorization: admin check, the route's params picked
// and validated, `workspaceId` forced to the key's workspace → the action → the result shaped by its
// route → errors as {name, message, code, type, data} (src/gateway/http-errors.ts).
import type { Server } from "node:http";
import { fileURLToPath } from "node:url";
import type { Context, Service, ServiceSchema } from "moleculer";
import ApiGateway from "moleculer-web";
import { mongoMixin } from "../mixins/mongo.mixin.ts";
import { configOf, type Config } from "../src/config.ts";
import {
  authenticateRequest,
  authorizeCall,
  type Gatekeeper,
  type ParamsCheck,
} from "../src/gateway/auth.ts";
import { aliasesOf } from "../src/gateway/aliases.ts";
import {
  BODY_LIMIT_BYTES,
  corsOnError,
  declaredLength,
  corsSettings,
  MAX_BODY_VALUES,
  MAX_JSON_DEPTH,
  moreValuesThan,
  nestedDeeperThan,
  MEDIA_ROUTE,
  mediaBodyLimit,
  shapeResult,
  type GatewayContext,
  type Req,
  type Res,
} from "../src/gateway/http.ts";
import { addSecurityHeaders } from "../src/gateway/security-headers.ts";
import { assertSecretStrength } from "../src/gateway/keys.ts";
import { bodyTooLarge, onClientError, sendError } from "../src/gateway/http-errors.ts";
import {
  BadRequestError,
  ERR_BAD_JSON,
  ERR_PAYLOAD_TOO_LARGE,
  ERR_UNSUPPORTED_MEDIA_TYPE,
  RouteNotFoundError,
} from "../src/errors.ts";
import { KeyStore } from "../src/gateway/keys.ts";
import { METRICS, registerGatewayMetrics } from "../src/gateway/metrics.ts";
import { RateLimiter } from "../src/gateway/rate-limit.ts";
import { isLargeBody, UploadSlots } from "../src/gateway/upload-slots.ts";
import { ID_PATTERN, ROUTES, ROUTES_BY_ID, validatorSchema } from "../src/gateway/routes.ts";
import { KeysRepo } from "../src/store/keys-repo.ts";
import { StatsRepo } from "../src/store/stats-repo.ts";
import { QUOTA_NAMES, QuotasRepo, type Quotas } from "../src/store/quotas-repo.ts";
import { QuotaBook } from "../src/quotas.ts";

export { BODY_LIMIT } from "../src/gateway/http.ts";
export type { ContractError } from "../src/gateway/http-errors.ts";

interface ApiThis extends Service, Gatekeeper {
  server: Server;
  checks: Map<string, ParamsCheck>;
  db?: import("mongodb").Db;
  stats?: StatsRepo;
  quotasRepo?: QuotasRepo;
  quotas?: QuotaBook;
  resolveAlias(url: string, method: string): false | { alias: { routeId?: string } };
}

type Middleware = (req: Req, res: Res, next: (err?: unknown) => void) => void;
/** moleculer-web's own body-parser (the package it ships). */
const { bodyParser } = ApiGateway as unknown as {
  bodyParser: {
    json(opts: {
      limit: string | number;
      strict: boolean;
      inflate: boolean;
      type: () => boolean;
      /** Sees the raw body before it is parsed; what it throws is the request's error. */
      verify?: (req: Req, res: Res, body: Buffer) => void;
    }): Middleware;
  };
};

/** The JSON body up to `limit` bytes, as sent: a compressed body is refused (415), so no request makes
 * the gateway inflate a small upload into `limit` bytes; one that announces more is refused (413) unread. A CORS preflight's body is never read (it carries
 * no key: moleculer-web answers it after `use`). With `uploads`, a body past BODY_LIMIT is read only in
 * one of its slots (upload-slots.ts), held until the request ends. */
function jsonBody(limit: number, uploads?: UploadSlots): Middleware {
  // Every body is read as JSON: one of another declared type is refused before (refusedContentType).
  const parse = bodyParser.json({
    limit,
    strict: true,
    inflate: false,
    type: () => true,
    verify: (_req, _res, body) => {
      if (body.length > BODY_LIMIT_BYTES && moreValuesThan(body, MAX_BODY_VALUES))
        throw new BadRequestError(
          `Request body holds more than ${MAX_BODY_VALUES} values (commas, brackets and braces): a large body carries media, not many values`,
          ERR_PAYLOAD_TOO_LARGE,
          { maxValues: MAX_BODY_VALUES },
          413,
        );
    },
  });
  return (req, res, next) => {
    if (req.method === "OPTIONS") return next();
    const length = declaredLength(req.headers);
    if (length !== null && length > limit) {
      // Refused on what it announces, before it takes an upload slot: body-parser would read and drop
      // all of it first, as slowly as the client sends it. The connection closes after the answer, so
      // the rest is never read.
      res.setHeader("Connection", "close");
      return next(bodyTooLarge(req));
    }
    const refused = refusedContentType(req.headers);
    if (refused) return next(refused);
    if (uploads && req.$caller && isLargeBody(req.headers, BODY_LIMIT_BYTES)) {
      let release: () => void;
      try {
        release = uploads.take(req.$caller.keyId);
      } catch (err) {
        res.setHeader("Retry-After", "1");
        return next(err);
      }
      res.once("close", release);
      // Closed already (the client left while its key was checked): no 'close' is coming.
      if (req.destroyed || res.destroyed) release();
    }
    parse(req, res, (err?: unknown) => {
      if (err) return next(err);
      // Nested past any request's shape: refused here, before a deep object overflows the stack of
      // the JSON encoding of the call that carries it (a 500).
      if (nestedDeeperThan((req as { body?: unknown }).body, MAX_JSON_DEPTH))
        return next(
          new BadRequestError(`Invalid JSON body: nested deeper than ${MAX_JSON_DEPTH} levels`, ERR_BAD_JSON),
        );
      next();
    });
  };
}

/** Why a body's Content-Type is refused (415), or null. A media type other than JSON (a form, text,
 * XML): body-parser would skip the body, and the route run as if nothing had been sent. JSON in a
 * charset other than UTF-8 (RFC 8259): body-parser would decode any `utf-*`, and UTF-7 writes the `,`
 * `[` `{` the value count looks for in base64. Null for a body sent without a Content-Type (read as
 * JSON), and when there is no body. */
function refusedContentType(headers: Req["headers"]): BadRequestError | null {
  const type = headers["content-type"];
  if (!type || headers["content-length"] === "0") return null;
  if (headers["content-length"] === undefined && headers["transfer-encoding"] === undefined) return null;
  const mediaType = type.split(";")[0].trim().toLowerCase();
  if (mediaType !== "application/json" && !mediaType.endsWith("+json"))
    return new BadRequestError(
      `Request bodies are JSON: send Content-Type: application/json (got ${mediaType})`,
      ERR_UNSUPPORTED_MEDIA_TYPE,
      { contentType: mediaType },
      415,
    );
  const charset = charsetsOf(type).find((c) => c !== "utf-8");
  if (charset !== undefined)
    return new BadRequestError(
      `Request bodies are JSON in UTF-8: send charset=utf-8 or none (got charset ${charset})`,
      ERR_UNSUPPORTED_MEDIA_TYPE,
      { charset },
      415,
    );
  return null;
}

/** Every charset a Content-Type names, unquoted, in lower case: each one, where a parser might read
 * the first or the last. */
function charsetsOf(type: string): string[] {
  return [...type.matchAll(/;\s*charset\s*=\s*("(?:[^"\\]|\\.)*"?|[^;\s]*)/gi)].map((m) =>
    m[1].replace(/^"|"$/g, "").replace(/\\(.)/g, "$1").toLowerCase(),
  );
}

/** The API sends no ETag or Last-Modified, so it takes no conditional request: moleculer-web would
 * answer any If-None-Match: * with an empty 304, whatever the method (a create that was made). */
const ignoreConditionals: Middleware = (req, _res, next) => {
  delete req.headers["if-none-match"];
  delete req.headers["if-modified-since"];
  next();
};

/** A moleculer-web route of /api/v1: key and rate limit, then the JSON body up to `limit` (read only
 * for a caller with a valid key: moleculer-web's own `bodyParsers` run before `use`), authorization,
 * the result shaped by its route spec. */
function restRoute(name: string, aliases: Record<string, unknown>, limit: number, uploads?: UploadSlots) {
  return {
    name,
    path: "/api/v1",
    mappingPolicy: "restrict",
    aliases,
    bodyParsers: false,
    use: [
      ignoreConditionals,
      function (this: ApiThis, req: Req, res: Res, next: (err?: unknown) => void) {
        authenticateRequest(this, req, res).then(() => next(), next);
      },
      jsonBody(limit, uploads),
      function (this: ApiThis, req: Req, _res: Res, next: (err?: unknown) => void) {
        // moleculer-web hands a path no alias has to the dashboard's file server: /api/v1/app.js would
        // answer the dashboard's script. A CORS preflight is answered whatever its path.
        if (req.method === "OPTIONS" || this.resolveAlias(req.parsedUrl ?? "", req.method ?? "GET"))
          return next();
        next(new RouteNotFoundError(req.method ?? "GET", (req.originalUrl ?? req.url ?? "").split("?")[0]));
      },
    ],
    authorization: true,
    onAfterCall(this: ApiThis, ctx: GatewayContext, _route: unknown, req: Req, res: Res, data: unknown) {
      return shapeResult(this.broker, ROUTES_BY_ID.get(req.$alias?.routeId ?? ""), ctx, req, res, data);
    },
  };
}

export function createApiService(cfg: Config): ServiceSchema {
  const cors = corsSettings(cfg);
  const workspaceKey = { workspaceId: { type: "string", pattern: ID_PATTERN } };

  const schema: ServiceSchema<Record<string, unknown>, object, object, ApiThis> = {
    name: "api",
    mixins: [ApiGateway as unknown as Partial<ServiceSchema>, mongoMixin()],

    settings: {
      port: cfg.port,
      ip: "0.0.0.0",
      cors,
      // The dashboard (public/: plain HTML/JS/CSS, no build step) for requests no route answers
      // outside /api/v1 (a path under it that no alias has is a 404 ROUTE_NOT_FOUND).
      assets: { folder: fileURLToPath(new URL("../public", import.meta.url)) },
      logRequest: "debug",
      // Never the params or the answer: they carry message texts, media, secrets and phone numbers.
      logRequestParams: null,
      logResponseData: null,
      logResponse: "debug",
      logRouteRegistration: "debug",
      log4XXResponses: false,
      // moleculer-web's error writer is replaced: one JSON shape for every failure.
      onError(this: ApiThis, req: Req, res: Res, err: unknown) {
        corsOnError(cors, req, res);
        sendError(req, res, err, this.logger);
      },
      routes: [
        // The same pipeline twice: routes whose body may carry media get a larger body limit. A path
        // no alias matches goes to the first route of its prefix: the small limit, then its 404.
        restRoute("rest", aliasesOf("/api/v1"), BODY_LIMIT_BYTES),
        restRoute(
          MEDIA_ROUTE,
          aliasesOf("/api/v1", true),
          mediaBodyLimit(cfg.mediaMaxBytes),
          new UploadSlots(),
        ),
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
        params: workspaceKey,
        async handler(this: ApiThis, ctx: Context<{ workspaceId: string }>) {
          return this.keys!.create(ctx.params.workspaceId);
        },
      },
      listKeys: {
        params: workspaceKey,
        async handler(this: ApiThis, ctx: Context<{ workspaceId: string }>) {
          return this.keys!.list(ctx.params.workspaceId);
        },
      },
      revokeKey: {
        params: { ...workspaceKey, keyId: { type: "string", pattern: ID_PATTERN } },
        async handler(this: ApiThis, ctx: Context<{ workspaceId: string; keyId: string }>) {
          await this.keys!.revoke(ctx.params.workspaceId, ctx.params.keyId);
          // Every gateway caches verified keys briefly: make them all forget this one now.
          await this.broker.broadcast("apikeys.revoked", { keyId: ctx.params.keyId });
          return null;
        },
      },
      /** A workspace's quotas: the QUOTA_* defaults with the admin's overrides. */
      getQuotas: {
        params: workspaceKey,
        async handler(this: ApiThis, ctx: Context<{ workspaceId: string }>) {
          return { workspaceId: ctx.params.workspaceId, ...(await this.quotas!.of(ctx.params.workspaceId)) };
        },
      },
      /** Overrides quotas of a workspace (null: back to the default); every node sees it within 5 s. */
      setQuotas: {
        params: {
          ...workspaceKey,
          ...Object.fromEntries(
            QUOTA_NAMES.map((n) => [
              n,
              { type: "number", integer: true, min: 0, optional: true, nullable: true },
            ]),
          ),
        },
        async handler(
          this: ApiThis,
          ctx: Context<{ workspaceId: string } & Partial<Record<keyof Quotas, number | null>>>,
        ) {
          const { workspaceId, ...changes } = ctx.params;
          await this.quotasRepo!.set(workspaceId, changes);
          this.quotas!.forget(workspaceId);
          return { workspaceId, ...(await this.quotas!.of(workspaceId)) };
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
      routeOf(this: ApiThis, url: string, method: string) {
        const found = this.resolveAlias(url, method);
        return found ? ROUTES_BY_ID.get(found.alias.routeId ?? "") : undefined;
      },
      /** moleculer-web's authorization hook (after the alias is resolved, before the call). */
      async authorize(this: ApiThis, ctx: GatewayContext, _route: unknown, req: Req) {
        authorizeCall(this.checks, ctx, req);
      },
      /** moleculer-web's top-level error hook (it would log every 5xx, even an expected 503). */
      errorHandler(this: ApiThis, req: Req, res: Res, err: unknown) {
        corsOnError(cors, req, res);
        sendError(req, res, err, this.logger);
      },
    },

    created(this: ApiThis) {
      assertSecretStrength("ADMIN_API_KEY", configOf(this.broker).adminApiKey);
      assertSecretStrength("METRICS_TOKEN", configOf(this.broker).metricsToken);
      this.corsEnabled = cors !== undefined;
      this.limiter = new RateLimiter(configOf(this.broker).rateLimitPerMinute);
      this.failedAuth = new RateLimiter(configOf(this.broker).authFailuresPerMinute);
      this.checks = new Map();
      for (const route of ROUTES) {
        this.checks.set(route.id, this.broker.validator!.compile(validatorSchema(route)) as ParamsCheck);
      }
      registerGatewayMetrics(this.broker);
      this.server.removeAllListeners("clientError");
      this.server.on("clientError", onClientError);
      addSecurityHeaders(this.server);
    },

    async started(this: ApiThis) {
      this.stats = new StatsRepo(this.db!);
      this.quotasRepo = new QuotasRepo(this.db!);
      this.quotas = new QuotaBook(this.quotasRepo, configOf(this.broker).quotas);
      this.keys = new KeyStore(new KeysRepo(this.db!), {
        adminKey: configOf(this.broker).adminApiKey,
      });
    },
  };
  // Typed with its own `this` above; returned as a plain schema so any broker takes it.
  return schema as unknown as ServiceSchema;
}

/** The bound port of a started gateway (PORT=0 picks a free one). */
export function boundPort(service: Service): number {
  const addr = (service as unknown as { server: Server }).server.address();
  return typeof addr === "object" && addr ? addr.port : 0;
}

export default createApiService;
