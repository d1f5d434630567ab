// moleculer-web aliases generated from the route table: an action call for every REST route, and for
// the operations routes (health, metrics, docs) an answer the gateway makes itself, never through
// the bus, since they describe this gateway.
import type { Logger, ServiceBroker } from "moleculer";
import { timingSafeEqual } from "node:crypto";
import { configOf } from "../config.ts";
import { UnauthorizedError } from "../errors.ts";
import { checkUnderLimit } from "./auth.ts";
import type { RateLimiter } from "./rate-limit.ts";
import { readiness } from "./health.ts";
import { send, type Req, type Res } from "./http.ts";
import { sendError } from "./http-errors.ts";
import { gatewayMetricsText } from "./metrics.ts";
import { buildOpenApi } from "./openapi.ts";
import { DOCS_CSS, renderDocsHtml } from "./docs-page.ts";
import { policyAllowingStyle } from "./security-headers.ts";
import { ROUTES, type RouteSpec } from "./routes.ts";
import type { StatsRepo } from "../store/stats-repo.ts";

/** What an operations answer reads from the api service. */
export interface GatewayView {
  broker: ServiceBroker;
  logger: Logger;
  /** Undefined until the gateway has connected to MongoDB. */
  stats?: StatsRepo;
  /** Wrong keys per client address (REST and Socket.IO's limit): wrong metrics tokens count too. */
  failedAuth: RateLimiter;
}

const JSON_TYPE = "application/json; charset=utf-8";
const OPENAPI = buildOpenApi();
const OPENAPI_JSON = JSON.stringify(OPENAPI);
const DOCS_HTML = renderDocsHtml(OPENAPI);
const DOCS_POLICY = policyAllowingStyle(DOCS_CSS);

/** `Authorization: Bearer <token>` names `token` (compared in constant time). */
function bearerMatches(req: Req, token: string): boolean {
  const given = Buffer.from(/^Bearer\s+(.+)$/i.exec(String(req.headers.authorization ?? ""))?.[1] ?? "");
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

/** The gateway's own answers (routes with a `handler`), by handler name. */
const OPERATIONS: Record<string, (gw: GatewayView, res: Res, req: Req) => Promise<void>> = {
  live: async (gw, res) => send(res, 200, JSON_TYPE, JSON.stringify({ live: true, node: gw.broker.nodeID })),
  ready: async (gw, res) => {
    const report = await readiness(gw.broker, gw.stats);
    send(res, report.ready ? 200 : 503, JSON_TYPE, JSON.stringify(report));
  },
  metrics: async (gw, res, req) => {
    const token = configOf(gw.broker).metricsToken;
    if (token) {
      // As wrong API keys: counted per address, and past the limit even the right token is refused,
      // so a guess is never told right. No token at all spends nothing.
      const matches = () => (bearerMatches(req, token) ? true : null);
      const address = req.socket?.remoteAddress ?? "unknown";
      if (!req.headers.authorization || !(await checkUnderLimit(gw.failedAuth, address, matches)))
        throw new UnauthorizedError("GET /metrics needs the METRICS_TOKEN as a Bearer token");
    }
    send(res, 200, "text/plain; version=0.0.4; charset=utf-8", await gatewayMetricsText(gw.broker, gw.stats));
  },
  openapi: async (_gw, res) => send(res, 200, JSON_TYPE, OPENAPI_JSON),
  docs: async (_gw, res) =>
    send(res, 200, "text/html; charset=utf-8", DOCS_HTML, { "Content-Security-Policy": DOCS_POLICY }),
};

/** The aliases of one mount point: those whose body may carry media, or the others. */
export function aliasesOf(mount: RouteSpec["mount"], mediaBody = false): Record<string, unknown> {
  const aliases: Record<string, unknown> = {};
  for (const route of ROUTES.filter((r) => r.mount === mount && Boolean(r.mediaBody) === mediaBody)) {
    const answer = route.handler ? OPERATIONS[route.handler] : undefined;
    if (route.handler && !answer) throw new Error(`route ${route.id}: no operation "${route.handler}"`);
    aliases[`${route.method} ${route.path}`] = answer
      ? function (this: GatewayView, req: Req, res: Res) {
          answer(this, res, req).catch((err: unknown) => sendError(req, res, err, this.logger));
        }
      : { action: route.action, routeId: route.id };
  }
  return aliases;
}
