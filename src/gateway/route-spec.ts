// The shape of one REST route (src/gateway/routes.ts lists them) and how params are placed in it.
import type { Rule, Rules } from "../accounts/params.ts";

/** Who may call a route: anyone, a workspace key (or the admin key naming a workspace), the admin key. */
export type AuthLevel = "public" | "workspace" | "admin";

/** Where a parameter comes from. `workspaceId` of workspace routes is never declared: the gateway sets
 * it from the caller's key (the admin key passes it in the query or body). */
export type ParamLocation = "path" | "query" | "body" | "header";

/** A parameter rule: the subset of fastest-validator rules the gateway needs, convertible to JSON Schema.
 * A header param names its header (`Idempotency-Key`). */
export type ParamRule = Rule & { in: ParamLocation; header?: string };

export interface RouteSpec {
  /** Stable id; also the OpenAPI operationId. */
  id: string;
  method: "GET" | "POST" | "PUT" | "DELETE";
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
  /** The param naming the node the call must go to (a drain): sent there directly, so the call carries
   * the gateway's own admin signature (src/admin-signature.ts) and needs no forwarding. */
  targetNode?: string;
  /** Params the gateway consumes and does not pass on (e.g. `format` of the QR route). */
  gatewayOnly?: string[];
  auth: AuthLevel;
  summary: string;
  tag: "accounts" | "chats" | "simulation" | "webhooks" | "keys" | "cluster" | "operations";
  /** Success status. @default 200 */
  status?: 200 | 201 | 204;
  /** `Location` header of a 201 answer, from the action's result. @default none */
  location?: (result: unknown) => string | undefined;
  /** Bodies other than JSON, chosen by the gateway-only `format` param: media type, and the result
   * encoded (undefined answers JSON after all). @default JSON only */
  formats?: Record<string, { type: string; encode: (result: unknown) => Buffer | undefined }>;
  /** Broker counter incremented once per successful answer, labelled `format`. @default none */
  counter?: string;
  /** Success media types. @default ["application/json"] */
  produces?: string[];
  /** The body may carry media: parsed with the larger limit MEDIA_MAX_BYTES asks for. @default false */
  mediaBody?: boolean;
  /** Error statuses the route documents beyond the common ones (401, 422, 429). */
  errors?: number[];
}

/** A string field of an action's result, if it has one (for `location`). */
export function fieldOf(result: unknown, name: string): string | undefined {
  const value = result && typeof result === "object" ? (result as Record<string, unknown>)[name] : undefined;
  return typeof value === "string" ? value : undefined;
}

/** `rules` placed in the request: the names in `where` at their location, the others in `rest`. */
export function placed(
  rules: Rules,
  where: Record<string, ParamLocation> = {},
  rest: ParamLocation = "body",
): Record<string, ParamRule> {
  return Object.fromEntries(
    Object.entries(rules).map(([name, rule]) => [name, { ...rule, in: where[name] ?? rest }]),
  );
}

/** A route under /api/v1 (a workspace route unless it says otherwise). */
export function v1(route: Omit<RouteSpec, "mount" | "auth"> & { auth?: AuthLevel }): RouteSpec {
  return { mount: "/api/v1", auth: "workspace", ...route };
}
