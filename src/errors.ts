// Every error Switchboard raises: MoleculerError subclasses with a fixed code and a stable `type`
// (the contract's error shape {name, message, code, type, data} survives the trip across NATS).
import { Errors } from "moleculer";

export const ERR_VALIDATION = "VALIDATION_ERROR";
export const ERR_NOT_FOUND = "NOT_FOUND";
export const ERR_UNKNOWN_ENGINE = "UNKNOWN_ENGINE";
export const ERR_NOT_IMPLEMENTED_BY_ENGINE = "NOT_IMPLEMENTED_BY_ENGINE";
export const ERR_ILLEGAL_TRANSITION = "ILLEGAL_TRANSITION";
export const ERR_INVALID_STATE = "INVALID_STATE";
export const ERR_NOT_OWNER = "NOT_OWNER";
export const ERR_WORKSPACE_UNAVAILABLE = "WORKSPACE_UNAVAILABLE";
export const ERR_UNAUTHORIZED = "UNAUTHORIZED";
export const ERR_FORBIDDEN = "FORBIDDEN";
export const ERR_RATE_LIMITED = "RATE_LIMITED";
export const ERR_DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE";
export const ERR_QUOTA_EXCEEDED = "QUOTA_EXCEEDED";
export const ERR_URL_NOT_ALLOWED = "URL_NOT_ALLOWED";

export class ValidationError extends Errors.MoleculerClientError {
  constructor(message: string, data?: unknown) {
    super(message, 422, ERR_VALIDATION, data);
  }
}

export class NotFoundError extends Errors.MoleculerClientError {
  constructor(what: string, id: string) {
    super(`${what} '${id}' not found`, 404, ERR_NOT_FOUND, { [what.toLowerCase()]: id });
  }
}

export class UnknownEngineError extends Errors.MoleculerClientError {
  constructor(name: string, known: string[]) {
    super(`Unknown engine '${name}' (known: ${known.join(", ")})`, 422, ERR_UNKNOWN_ENGINE, {
      engine: name,
      known,
    });
  }
}

/** An operation the engine of this account cannot perform (e.g. `simulate.*` on webjs). */
export class NotImplementedByEngine extends Errors.MoleculerClientError {
  constructor(engine: string, operation: string) {
    super(`Engine '${engine}' does not implement '${operation}'`, 422, ERR_NOT_IMPLEMENTED_BY_ENGINE, {
      engine,
      operation,
    });
  }
}

/** A lifecycle transition the table does not allow: a bug, never user input. */
export class IllegalTransitionError extends Errors.MoleculerError {
  constructor(from: string, to: string) {
    super(`Illegal status transition ${from} → ${to}`, 500, ERR_ILLEGAL_TRANSITION, { from, to });
  }
}

/** The account is not in a state that allows the operation (e.g. QR while connected). */
export class InvalidStateError extends Errors.MoleculerClientError {
  constructor(message: string, data?: unknown) {
    super(message, 409, ERR_INVALID_STATE, data);
  }
}

/** A repeat of an idempotent create while the first is still recording the account: nothing recorded;
 * tried again, it gets that account (or, should the first fail, makes it). */
export function createUnderWay(accountId: string): InvalidStateError {
  return new InvalidStateError(`Account ${accountId} is being created by another request; try again`, {
    accountId,
  });
}

export const ERR_SEND_INTERRUPTED = "SEND_INTERRUPTED";

/** The engine's browser went (a stop, a crash, a hand-off) while it was sending: the message may or may
 * not have left. A keyed send's record turns `uncertain`; it is not sent again under its key. */
export class SendInterruptedError extends Errors.MoleculerRetryableError {
  constructor(accountId: string, cause: string) {
    super(
      `The session of account '${accountId}' ended while it was sending (${cause}); the message may or may not have been sent`,
      503,
      ERR_SEND_INTERRUPTED,
      { accountId },
    );
  }
}

/** No live owner can serve the workspace right now (failover in progress); retry shortly. */
export class WorkspaceUnavailableError extends Errors.MoleculerRetryableError {
  constructor(workspaceId: string, reason: string) {
    super(`Workspace '${workspaceId}' is unavailable: ${reason}`, 503, ERR_WORKSPACE_UNAVAILABLE, {
      workspaceId,
      reason,
    });
  }
}

export class UnauthorizedError extends Errors.MoleculerClientError {
  constructor(message = "Missing or invalid API key") {
    super(message, 401, ERR_UNAUTHORIZED);
  }
}

export class ForbiddenError extends Errors.MoleculerClientError {
  constructor(message = "This key may not do that") {
    super(message, 403, ERR_FORBIDDEN);
  }
}

/** This node is not (or no longer) the fenced owner of the account's workspace. */
export class NotOwnerError extends Errors.MoleculerRetryableError {
  constructor(accountId: string, node: string, data?: unknown) {
    super(`Node '${node}' does not own account '${accountId}'`, 409, ERR_NOT_OWNER, data);
  }
}

// ---- gateway (REST) errors ----
export const ERR_BAD_REQUEST = "BAD_REQUEST";
export const ERR_BAD_JSON = "BAD_JSON";
export const ERR_PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE";
export const ERR_UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE";
export const ERR_ROUTE_NOT_FOUND = "ROUTE_NOT_FOUND";
export const ERR_SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE";

/** The gateway has not yet what it needs to answer (it just started): 503, retry shortly. */
export class GatewayStartingError extends Errors.MoleculerRetryableError {
  constructor(message = "Gateway is starting, retry") {
    super(message, 503, ERR_SERVICE_UNAVAILABLE);
  }
}
export const ERR_INTERNAL = "INTERNAL_ERROR";

/** A request the gateway cannot even parse (bad JSON, undecodable path, unsupported charset). */
export class BadRequestError extends Errors.MoleculerClientError {
  constructor(message: string, type = ERR_BAD_REQUEST, data?: unknown, code = 400) {
    super(message, code, type, data);
  }
}

export class PayloadTooLargeError extends Errors.MoleculerClientError {
  constructor(limit: string) {
    super(`Request body larger than ${limit}`, 413, ERR_PAYLOAD_TOO_LARGE, { limit });
  }
}

/** No route matches the method and path. */
export class RouteNotFoundError extends Errors.MoleculerClientError {
  constructor(method: string, path: string) {
    super(`No route ${method} ${path}`, 404, ERR_ROUTE_NOT_FOUND, { method, path });
  }
}

/** The key exceeded its request rate; `data.retryAfter` (seconds) is also sent as `Retry-After`. */
export class RateLimitedError extends Errors.MoleculerClientError {
  constructor(retryAfter: number, limitPerMinute: number) {
    super(`Rate limit of ${limitPerMinute} requests per minute exceeded`, 429, ERR_RATE_LIMITED, {
      retryAfter,
      limitPerMinute,
    });
  }
}

/** MongoDB does not answer: the request fails fast (a client retries later) instead of hanging. The
 * driver's message (it names the database's address) stays on this node: `cause`, for its log. */
export class DatabaseUnavailableError extends Errors.MoleculerRetryableError {
  constructor(override readonly cause: string) {
    super("The database is unavailable; try again shortly", 503, ERR_DATABASE_UNAVAILABLE);
  }
}

/** The workspace is at one of its quotas (QUOTA_* or an admin's override). */
export class QuotaExceededError extends Errors.MoleculerClientError {
  constructor(workspaceId: string, quota: string, limit: number) {
    super(`Workspace '${workspaceId}' is at its ${quota} quota (${limit})`, 429, ERR_QUOTA_EXCEEDED, {
      workspaceId,
      quota,
      limit,
    });
  }
}

/** A URL the cluster would call points at an address it must not reach (loopback, private, metadata…). */
export class UrlNotAllowedError extends Errors.MoleculerClientError {
  constructor(url: string, reason: string) {
    super(`url is not allowed: ${reason}`, 422, ERR_URL_NOT_ALLOWED, { field: "url", url, reason });
  }
}

// ---- outbound messages ----
export const ERR_UNSUPPORTED_MESSAGE_TYPE = "UNSUPPORTED_MESSAGE_TYPE";
export const ERR_INVALID_RECIPIENT = "INVALID_RECIPIENT";
/** A reaction to a message the account's WhatsApp Web does not have (`replyTo`). */
export const ERR_MESSAGE_NOT_FOUND = "MESSAGE_NOT_FOUND";
export const ERR_MEDIA_TOO_LARGE = "MEDIA_TOO_LARGE";
export const ERR_INVALID_MEDIA = "INVALID_MEDIA";
export const ERR_MEDIA_TYPE_MISMATCH = "MEDIA_TYPE_MISMATCH";
export const ERR_MEDIA_UNAVAILABLE = "MEDIA_UNAVAILABLE";
export const ERR_IDEMPOTENCY_MISMATCH = "IDEMPOTENCY_KEY_REUSED";
export const ERR_SEND_QUEUE_FULL = "SEND_QUEUE_FULL";
export const ERR_SEND_DEADLINE_EXCEEDED = "SEND_DEADLINE_EXCEEDED";

/** The account's outbound queue is longer than a request may wait (SEND_MIN_GAP_MS × sends waiting):
 * nothing was sent or kept; retry after `data.retryAfter` seconds. */
export class SendQueueFullError extends Errors.MoleculerClientError {
  constructor(accountId: string, retryAfter: number) {
    super(
      `The outbound queue of account '${accountId}' is full; retry in ${retryAfter} s`,
      429,
      ERR_SEND_QUEUE_FULL,
      { accountId, retryAfter },
    );
  }
}

/** A send refused before anything was recorded or sent; `type` says why (the constants above). */
export class MessageRejectedError extends Errors.MoleculerClientError {
  constructor(message: string, type: string, data?: unknown, code = 422) {
    super(message, code, type, data);
  }
}

/** A reaction to a message the account does not have: refused, nothing sent. */
export function reactionTargetNotFound(replyTo: string | undefined): MessageRejectedError {
  return new MessageRejectedError(
    `Message '${replyTo ?? ""}' to react to was not found on this account (mistyped, or too old for WhatsApp Web to have it); nothing was sent`,
    ERR_MESSAGE_NOT_FOUND,
    { field: "replyTo", replyTo },
  );
}

/** An idempotency key already used for another message (another digest): refused, nothing sent. */
export function idempotencyKeyReused(key: string): MessageRejectedError {
  return new MessageRejectedError(
    `Idempotency key '${key}' was used for another message`,
    ERR_IDEMPOTENCY_MISMATCH,
    {
      field: "idempotencyKey",
      key,
    },
  );
}

export const ERR_NATS_AUTHORIZATION = "NATS_AUTHORIZATION";

/** NATS refused this node's credentials at start (the transporter alone would retry forever). */
export class NatsAuthorizationError extends Errors.MoleculerError {
  constructor(servers: string[], cause: string) {
    super(
      `NATS authorization failed at ${servers.join(",")}: ${cause}. Check NATS_USER/NATS_PASSWORD, ` +
        "NATS_TOKEN, NATS_NKEY_SEED, NATS_CREDS_FILE or the credentials in NATS_URL",
      500,
      ERR_NATS_AUTHORIZATION,
      { servers },
    );
  }
}
