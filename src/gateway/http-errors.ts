// Every failure of the gateway's HTTP side in the contract's shape {name, message, code, type, data}
// with a stable `type` (DESIGN.md, "Interfaces"; types in src/errors.ts), never a 5xx for bad input.
import type { Socket } from "node:net";
import { Errors, type Logger } from "moleculer";
import ApiGateway from "moleculer-web";
import {
  BadRequestError,
  DatabaseUnavailableError,
  ERR_BAD_JSON,
  ERR_BAD_REQUEST,
  ERR_INTERNAL,
  ERR_SEND_DEADLINE_EXCEEDED,
  ERR_SERVICE_UNAVAILABLE,
  ERR_UNSUPPORTED_MEDIA_TYPE,
  PayloadTooLargeError,
  RouteNotFoundError,
} from "../errors.ts";
import { asDatabaseError } from "../store/mongo.ts";
import { BODY_LIMIT, MEDIA_ROUTE, send, type Req, type Res } from "./http.ts";
import { ROUTES_BY_ID } from "./routes.ts";

/** The error body of every failed request (DESIGN.md, "Interfaces"). */
export interface ContractError {
  name: string;
  message: string;
  code: number;
  type: string;
  data?: unknown;
}

/** 413 PAYLOAD_TOO_LARGE naming the body limit of the request's route. */
export function bodyTooLarge(req: Req): PayloadTooLargeError {
  return new PayloadTooLargeError(
    (req.$route as { name?: string } | undefined)?.name === MEDIA_ROUTE
      ? "MEDIA_MAX_BYTES in base64 plus 64kb"
      : BODY_LIMIT,
  );
}

/** body-parser failures (wrapped by moleculer-web, `type` kept) → the contract's stable types. */
const BODY_ERRORS: Record<string, (e: Errors.MoleculerError, req: Req) => Errors.MoleculerError> = {
  "entity.parse.failed": (e) => new BadRequestError(`Invalid JSON body: ${e.message}`, ERR_BAD_JSON),
  "entity.too.large": (_e, req) => bodyTooLarge(req),
  "charset.unsupported": (e) => new BadRequestError(e.message, ERR_UNSUPPORTED_MEDIA_TYPE, undefined, 415),
  "encoding.unsupported": (e) => new BadRequestError(e.message, ERR_UNSUPPORTED_MEDIA_TYPE, undefined, 415),
};

const shape = (e: Errors.MoleculerError): ContractError => ({
  name: e.name,
  message: e.message,
  code: e.code,
  type: e.type,
  data: e.data,
});

/** 503 SERVICE_UNAVAILABLE: no node serves `action` right now. */
function noNodeServes(action: string): Errors.MoleculerRetryableError {
  return new Errors.MoleculerRetryableError(
    `No node can serve '${action}' right now`,
    503,
    ERR_SERVICE_UNAVAILABLE,
    {
      action,
    },
  );
}

/** When the gateway last logged why the database is unavailable: once per OUTAGE_LOG_EVERY_MS, not
 * once a request. */
let outageLoggedAt = 0;
const OUTAGE_LOG_EVERY_MS = 10_000;

function logOutage(e: DatabaseUnavailableError, logger: Logger): void {
  if (Date.now() - outageLoggedAt < OUTAGE_LOG_EVERY_MS) return;
  outageLoggedAt = Date.now();
  logger.warn(`Calls answered 503 DATABASE_UNAVAILABLE: ${e.cause}`);
}

/** A failed request in the contract's shape: moleculer-web's own failures and body-parser's, then as
 * any call's (`callError`). */
export function toContractError(req: Req, err: unknown, logger: Logger): ContractError {
  const web = (ApiGateway as unknown as { Errors: Record<string, abstract new (...args: never[]) => Error> })
    .Errors;
  if (err instanceof web.NotFoundError) {
    return shape(
      new RouteNotFoundError(req.method ?? "GET", (req.originalUrl ?? req.url ?? "").split("?")[0]),
    );
  }
  if (err instanceof web.ServiceUnavailableError) {
    return shape(noNodeServes(ROUTES_BY_ID.get(req.$alias?.routeId ?? "")?.action ?? ""));
  }
  const e = err as { type?: unknown };
  if (err instanceof Error && typeof e.type === "string" && /^[a-z]+\.[a-z.]+$/.test(e.type)) {
    // body-parser's failures, whatever moleculer-web made of their code (a stream's own code such as
    // ECONNABORTED stays a string): the client's fault.
    const mapped = BODY_ERRORS[e.type];
    return shape(
      mapped ? mapped(err as Errors.MoleculerError, req) : new BadRequestError(err.message, ERR_BAD_REQUEST),
    );
  }
  return callError(err, logger);
}

/**
 * A failed call (a REST request's action, a socket's call or replay) in the contract's shape. A call
 * that found no node serving its action is 503 (Moleculer answers 404, which would read as "no such
 * account"); a database that did not answer is 503 DATABASE_UNAVAILABLE, its cause logged here and not
 * sent. Errors from other nodes arrive as plain Errors carrying code/type/data (only Moleculer's own
 * classes are rebuilt), so anything with an HTTP code keeps it; anything else is a logged 500.
 */
export function callError(err: unknown, logger: Logger): ContractError {
  if (err instanceof Errors.ServiceNotFoundError || err instanceof Errors.ServiceNotAvailableError) {
    // Every worker is down or restarting (an account's `session.*` action), or the service is gone.
    return shape(noNodeServes((err.data as { action?: string } | undefined)?.action ?? ""));
  }
  const outage = asDatabaseError(err);
  if (outage instanceof DatabaseUnavailableError) {
    logOutage(outage, logger);
    return shape(outage);
  }
  const e = err as { code?: unknown; type?: unknown; data?: unknown };
  if (err instanceof Error && typeof e.code === "number" && e.code >= 400 && e.code <= 599) {
    return {
      name: err.name,
      message: err.message,
      code: e.code,
      type: typeof e.type === "string" && e.type ? e.type : e.code >= 500 ? ERR_INTERNAL : ERR_BAD_REQUEST,
      data: e.data,
    };
  }
  logger.error("Unexpected error of a call", err);
  return { name: "InternalError", message: "Internal error", code: 500, type: ERR_INTERNAL };
}

/** Writes `err` as the contract's error body (or just ends an answer already under way). */
export function sendError(req: Req, res: Res, err: unknown, logger: Logger): void {
  const e = toContractError(req, err, logger);
  if (res.headersSent) {
    if (!res.writableEnded) res.end();
    return;
  }
  const code = e.code;
  // Not for the 5xx a client is told to retry on (501, 503, a send past its deadline): no fault here.
  if (code >= 500 && code !== 501 && code !== 503 && e.type !== ERR_SEND_DEADLINE_EXCEEDED)
    logger.error(`${req.method} ${req.url}:`, err);
  const body = JSON.stringify({ name: e.name, message: e.message, code, type: e.type, data: e.data });
  const headers: Record<string, string> = {};
  if (e.type === "RATE_LIMITED")
    headers["Retry-After"] = String((e.data as { retryAfter: number }).retryAfter);
  send(res, code, "application/json; charset=utf-8", body, headers);
}

/** Answers a request Node's HTTP parser rejected (oversized headers, garbage) with a JSON error. */
export function onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable || (err as { code?: string }).code === "ECONNRESET") {
    socket.destroy();
    return;
  }
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
