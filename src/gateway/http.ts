// What the gateway's HTTP pieces share: moleculer-web's request as the gateway sees it, a plain
// writer for answers the gateway makes itself, the CORS settings from CORS_ORIGINS, and the shaping
// of an action's result by its route (status, Location, other media types; src/gateway/routes.ts).
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Context, ServiceBroker } from "moleculer";
import type { Config } from "../config.ts";
import type { Caller } from "./keys.ts";
import type { RouteSpec } from "./routes.ts";

/** Largest JSON body accepted; larger is a 413 PAYLOAD_TOO_LARGE. */
export const BODY_LIMIT = "64kb";
/** BODY_LIMIT in bytes. */
export const BODY_LIMIT_BYTES = 64 * 1024;

/** Name of the moleculer-web route of the routes whose body may carry media. */
export const MEDIA_ROUTE = "media";

/** Largest JSON body of a route that may carry media: MEDIA_MAX_BYTES in base64, plus BODY_LIMIT. */
export function mediaBodyLimit(mediaMaxBytes: number): number {
  return Math.ceil(mediaMaxBytes / 3) * 4 + BODY_LIMIT_BYTES;
}

/** The size of the body a request's Content-Length announces; null without one (chunked, no body). */
export function declaredLength(headers: Record<string, string | string[] | undefined>): number | null {
  const length = headers["content-length"];
  return typeof length === "string" && /^\d+$/.test(length) ? Number(length) : null;
}

/** The context moleculer-web calls an action with; its meta carries the answer's status and headers. */
export type GatewayContext = Context<unknown, Record<string, unknown>>;

/** A request as moleculer-web hands it on, with what the gateway adds (`$caller`, `$format`). */
export type Req = IncomingMessage & {
  $ctx: GatewayContext;
  $params: Record<string, unknown>;
  $alias?: { routeId?: string; action?: string };
  /** The endpoint moleculer-web will call (set before authorization; a `targetNode` route replaces it). */
  $endpoint?: unknown;
  $route?: unknown;
  $caller?: Caller;
  $format?: string;
  parsedUrl?: string;
  originalUrl?: string;
};
export type Res = ServerResponse;

export function send(
  res: Res,
  status: number,
  type: string,
  body: string | Buffer,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { "Content-Type": type, "Content-Length": Buffer.byteLength(body), ...headers });
  res.end(body);
}

/** moleculer-web's `cors` settings (shared by Socket.IO), or undefined when CORS_ORIGINS is empty. */
export function corsSettings(cfg: Config) {
  const origins = cfg.corsOrigins
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (origins.length === 0) return undefined;
  return {
    origin: origins.includes("*") ? "*" : origins,
    methods: ["GET", "POST", "PUT", "DELETE", "OPTIONS"],
    allowedHeaders: ["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key"],
    exposedHeaders: [
      "Retry-After",
      "X-Request-ID",
      "X-RateLimit-Remaining",
      "Location",
      "Idempotent-Replayed",
    ],
    maxAge: 600,
  };
}

/**
 * The CORS headers of an answer to an allowed origin, for a failure refused before moleculer-web wrote
 * its own (a bad key, a rate limit, a body it could not parse: its `use` middlewares run first): without
 * them a browser sees a CORS failure and cannot read the error's `type` or `Retry-After`.
 */
export function corsOnError(cors: ReturnType<typeof corsSettings>, req: Req, res: Res): void {
  const origin = req.headers.origin;
  if (!cors || !origin || res.headersSent || res.getHeader("Access-Control-Allow-Origin")) return;
  const allowed = cors.origin === "*" ? "*" : cors.origin.includes(origin) ? origin : null;
  if (!allowed) return;
  res.setHeader("Access-Control-Allow-Origin", allowed);
  if (allowed !== "*") res.setHeader("Vary", "Origin");
  res.setHeader("Access-Control-Expose-Headers", cors.exposedHeaders.join(", "));
}

/** moleculer-web's `onAfterCall` for every route of the table: what the route declares about its
 * answer (counter, other media type, 201 with Location, 204 without body) applied to the result. */
export function shapeResult(
  broker: ServiceBroker,
  spec: RouteSpec | undefined,
  ctx: GatewayContext,
  req: Req,
  res: Res,
  data: unknown,
): unknown {
  if (!spec) return data;
  const format = req.$format ?? "json";
  if (spec.counter) broker.metrics.increment(spec.counter, { format });
  const other = spec.formats?.[format];
  const body = other?.encode(data);
  if (other && body) {
    ctx.meta.$responseType = other.type;
    return body;
  }
  if (spec.status === 201) {
    res.statusCode = 201;
    ctx.meta.$statusCode = 201;
    const location = spec.location?.(data);
    if (location) ctx.meta.$location = location;
  } else if (spec.status === 204) {
    ctx.meta.$statusCode = 204;
    return null;
  }
  return data;
}

/** No request body of the API nests deeper than a few levels. */
export const MAX_JSON_DEPTH = 32;

/** Whether `value` nests objects or arrays deeper than `max` (iterative: any depth is safe to check). */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (depth >= max) return true;
    for (const child of Object.values(v))
      if (child !== null && typeof child === "object") stack.push([child, depth + 1]);
  }
  return false;
}

/** However large a body (one carrying media in base64), it holds no more values than a body of
 * BODY_LIMIT could: JSON.parse of millions of small values would hold the gateway's event loop for
 * seconds. Counted on the raw bytes as the commas between values and the brackets and braces that open
 * arrays and objects (a nested `[[[…]]]` has no comma); base64 holds none of the three. */
export const MAX_BODY_VALUES = 64 * 1024;

/** What starts or separates a JSON value in a raw body: `,` `[` `{`. */
const VALUE_BYTES = [0x2c, 0x5b, 0x7b];

/** Whether the raw body holds more than `max` commas, brackets and braces together (byte scans,
 * nothing parsed; each stops at the bound). */
export function moreValuesThan(body: Buffer, max: number): boolean {
  let left = max;
  for (const byte of VALUE_BYTES)
    for (let at = body.indexOf(byte); at !== -1; at = body.indexOf(byte, at + 1)) if (--left < 0) return true;
  return false;
}
