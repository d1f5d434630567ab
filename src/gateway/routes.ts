// The REST contract of DESIGN.md ("Interfaces"), declared once. services/api.service.ts generates its
// moleculer-web aliases from this table and src/gateway/openapi.ts generates the OpenAPI document from
// it, so the two cannot drift. Every account alias goes to `accounts.*` (never `session.*`: moleculer-web
// resolves an alias's endpoint before authentication, with the gateway's own context).
import { fastestRule, ID_PATTERN } from "../accounts/params.ts";
import type { RouteSpec } from "./route-spec.ts";
import { ACCOUNT_ROUTES } from "./routes/accounts.ts";
import { CHAT_ROUTES } from "./routes/chats.ts";
import { ADMIN_ROUTES } from "./routes/admin.ts";
import { EVENT_ROUTES } from "./routes/events.ts";
import { OPERATIONS_ROUTES } from "./routes/operations.ts";
import { WEBHOOK_ROUTES } from "./routes/webhooks.ts";

export type { AuthLevel, ParamLocation, ParamRule, RouteSpec } from "./route-spec.ts";
export { ID_PATTERN } from "../accounts/params.ts";

export const ROUTES: readonly RouteSpec[] = [
  ...ACCOUNT_ROUTES,
  ...CHAT_ROUTES,
  ...EVENT_ROUTES,
  ...WEBHOOK_ROUTES,
  ...ADMIN_ROUTES,
  ...OPERATIONS_ROUTES,
];

export const ROUTES_BY_ID: ReadonlyMap<string, RouteSpec> = new Map(ROUTES.map((r) => [r.id, r]));

/** The full URL path of a route (`/api/v1/accounts/:accountId`). */
export function fullPath(route: RouteSpec): string {
  return route.mount === "/" ? route.path : `${route.mount}${route.path}`;
}

/** The fastest-validator schema of a route's params (plus `workspaceId` for workspace routes). */
export function validatorSchema(route: RouteSpec): Record<string, unknown> {
  const schema: Record<string, unknown> = {};
  for (const [name, rule] of Object.entries(route.params)) {
    const { in: _in, header: _h, ...rest } = rule;
    schema[name] = fastestRule(rest);
  }
  if (route.auth === "workspace") schema.workspaceId = { type: "string", pattern: ID_PATTERN };
  return schema;
}
