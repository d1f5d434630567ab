// Who may call /api/v1 and with what: the key (Bearer or X-API-Key) and the per-key rate limit before
// moleculer-web resolves the alias's endpoint, then the route's admin check and its params picked,
// validated and `workspaceId` forced to the key's workspace before the action is called.
import {
  GatewayStartingError,
  ForbiddenError,
  RateLimitedError,
  RouteNotFoundError,
  UnauthorizedError,
  ValidationError,
} from "../errors.ts";
import type { GatewayContext, Req, Res } from "./http.ts";
import { presentedKey, type Caller, type KeyStore } from "./keys.ts";
import type { RateLimiter } from "./rate-limit.ts";
import { ROUTES_BY_ID, type RouteSpec } from "./routes.ts";

/** A compiled fastest-validator check of one route's params. */
export type ParamsCheck = (params: unknown) => true | { message: string; field: string; type: string }[];

export interface Gatekeeper {
  /** Undefined until the gateway has connected to MongoDB (requests then get a retryable 503). */
  keys?: KeyStore;
  limiter: RateLimiter;
  /** Failed key checks per client address (a token spent per wrong key). */
  failedAuth: RateLimiter;
  /** Whether CORS is configured (a preflight is answered only then). */
  corsEnabled: boolean;
  /** The route an URL and method resolve to, if any (moleculer-web's alias lookup). */
  routeOf(url: string, method: string): RouteSpec | undefined;
}

/**
 * A secret presented from `address` checked under the address's failed-auth limit: `check` answers
 * null for a wrong secret, which spends one of the address's tokens. An address out of them is
 * refused (RateLimitedError) before any check. Checks under way count as spent until they answer:
 * past the tokens left, more from the address wait for one to answer (a right secret gives its token
 * back), so wrong secrets sent at once cannot all be checked, and right ones sent at once are only
 * queued, never refused. `known` is an answer had without a check (a cached key): it does not wait
 * behind other checks from its address (every client behind one proxy shares one), but an address out
 * of tokens is refused all the same, so a guess past the limit is never told right.
 */
export async function checkUnderLimit<T>(
  failedAuth: RateLimiter,
  address: string,
  check: () => T | null | Promise<T | null>,
  known?: T,
): Promise<T | null> {
  for (let strikes = failedAuth.peek(address); !strikes.allowed; strikes = failedAuth.peek(address)) {
    if (!failedAuth.isHeld(address)) throw new RateLimitedError(strikes.retryAfterSec, failedAuth.perMinute);
    if (known !== undefined) return known;
    await failedAuth.settled(address);
  }
  if (known !== undefined) return known;
  const settle = failedAuth.hold(address);
  try {
    const answer = await check();
    settle(answer === null);
    return answer;
  } finally {
    settle(false);
  }
}

/** The caller a presented key stands for, or null for a wrong key (see checkUnderLimit). */
export function callerOfKey(
  keys: KeyStore,
  failedAuth: RateLimiter,
  presented: string,
  address: string,
): Promise<Caller | null> {
  if (presented.length > 512) return checkUnderLimit(failedAuth, address, () => null);
  return checkUnderLimit(failedAuth, address, () => keys.authenticate(presented), keys.known(presented));
}

/** `use` middleware of /api/v1: who is calling, and may they make one more request now. */
export async function authenticateRequest(gate: Gatekeeper, req: Req, res: Res): Promise<void> {
  if (req.method === "OPTIONS") {
    // A CORS preflight carries no key; moleculer-web answers it (204) after this middleware. Any
    // other OPTIONS would be routed as the alias of its Access-Control-Request-Method: refuse it.
    if (req.headers["access-control-request-method"] && gate.corsEnabled) return;
    throw new RouteNotFoundError("OPTIONS", (req.originalUrl ?? req.url ?? "").split("?")[0]);
  }
  const presented = presentedKey(req.headers);
  if (!presented)
    throw new UnauthorizedError("Missing API key: send Authorization: Bearer <key> or X-API-Key");
  if (!gate.keys) throw new GatewayStartingError("Gateway is starting");
  let caller: Caller | null;
  try {
    caller = await callerOfKey(gate.keys, gate.failedAuth, presented, req.socket?.remoteAddress ?? "unknown");
  } catch (err) {
    if (err instanceof RateLimitedError) res.setHeader("Retry-After", String(err.data.retryAfter));
    throw err;
  }
  if (!caller) throw new UnauthorizedError("Invalid API key");
  const decision = gate.limiter.take(caller.keyId);
  if (gate.limiter.perMinute > 0) res.setHeader("X-RateLimit-Remaining", String(decision.remaining));
  if (!decision.allowed) {
    res.setHeader("Retry-After", String(decision.retryAfterSec));
    throw new RateLimitedError(decision.retryAfterSec, gate.limiter.perMinute);
  }
  req.$caller = caller;
  // Admin routes are refused before anything about them (e.g. whether their service runs) shows.
  const spec = gate.routeOf(req.parsedUrl ?? "", req.method ?? "GET");
  if (spec?.auth === "admin" && caller.kind !== "admin")
    throw new ForbiddenError("This route needs the admin key");
}

/** moleculer-web's authorization hook: runs after the alias is resolved, before the call. Picks the
 * route's declared params only, validates them and sets `workspaceId` from the key. */
export function authorizeCall(checks: ReadonlyMap<string, ParamsCheck>, ctx: GatewayContext, req: Req): void {
  const spec = ROUTES_BY_ID.get(req.$alias?.routeId ?? "");
  const caller = req.$caller;
  if (!spec || !caller) throw new UnauthorizedError();
  if (spec.auth === "admin" && caller.kind !== "admin")
    throw new ForbiddenError("This route needs the admin key");
  const raw = req.$params ?? {};
  const params: Record<string, unknown> = {};
  for (const [name, rule] of Object.entries(spec.params)) {
    const value = rule.in === "header" ? headerValue(req, rule.header ?? name) : raw[name];
    if (value !== undefined) params[name] = value;
  }
  if (spec.auth === "workspace") {
    params.workspaceId = caller.kind === "workspace" ? caller.workspaceId : raw.workspaceId;
    if (params.workspaceId === undefined) {
      throw new ValidationError("The admin key must name the workspace (workspaceId in query or body)", [
        { field: "workspaceId", type: "required", message: "The 'workspaceId' field is required." },
      ]);
    }
  }
  const result = checks.get(spec.id)!(params);
  if (result !== true) throw new ValidationError("Parameters validation error", result);
  for (const name of spec.gatewayOnly ?? []) {
    if (name === "format") req.$format = params.format as string | undefined;
    delete params[name];
  }
  Object.assign(params, spec.fixed);
  req.$params = params;
  if (spec.targetNode && spec.action) {
    const target = ctx.broker.registry.getActionEndpointByNodeId(
      spec.action,
      String(params[spec.targetNode]),
    );
    if (target) req.$endpoint = target;
  }
  if (typeof params.workspaceId === "string") ctx.meta.workspaceId = params.workspaceId;
  ctx.meta.keyId = caller.keyId;
}

/** A request header's value (the first, when repeated). */
function headerValue(req: Req, name: string): string | undefined {
  const value = req.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}
