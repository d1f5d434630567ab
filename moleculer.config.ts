// Broker options of every Switchboard node. Settings come from the environment through src/config.ts:
//   NAMESPACE          Moleculer namespace, prefixes KV buckets  (switchboard)
//   NODE_ID            Moleculer node id                          (default <hostname>-<pid>)
//   NATS_URL           NATS transporter and JetStream KV          (nats://127.0.0.1:4222)
//   MONGO_URL          MongoDB, database in the path              (mongodb://127.0.0.1:27017/switchboard)
//   SERVICES           services of this node: api,io,accounts,session,webhooks (all)
//   PORT               gateway HTTP port (REST + Socket.IO)        (3000)
//   ENGINE             default engine of new accounts: webjs | simulated (webjs)
//   ADMIN_API_KEY      admin key for key management and cluster routes; signs admin calls on the bus
//   ADMIN_PUBLIC_KEY   verifies admin calls on nodes without ADMIN_API_KEY (npm run admin-public-key)
//   LOG_LEVEL          fatal | error | warn | info | debug       (info)
//   SESSION_CAPACITY   sessions per worker (placement weight)     (50)
//   START_CONCURRENCY  concurrent engine starts per worker        (2)
//   QR_FIRST_TTL_MS, QR_REFRESH_MS, QR_MAX                        (60000, 20000, 6)
//   HEARTBEAT_INTERVAL_MS, HEARTBEAT_TIMEOUT_MS                    (2000, 6000)
//   REQUEST_TIMEOUT_MS                                            (15000)
//   LEASE_RENEW_MS, LEASE_TTL_MS                                  (500, 3500)
//   RECONCILE_MS, LOAD_FACTOR, REBALANCE_BATCH                    (3000, 1.25, 5)
//   CHROMIUM_PATH, STARTUP_TIMEOUT_MS, PROFILE_DIR                (/usr/bin/chromium, 60000, tmp)
//   RATE_LIMIT_PER_MINUTE, CORS_ORIGINS                           (600, "")
//   METRICS_TOKEN, MOLECULER_METRICS                              ("", requests)
//   WEBHOOK_MAX_ATTEMPTS, WEBHOOK_BACKOFF_BASE_MS, WEBHOOK_BACKOFF_MAX_MS (10, 1000, 300000)
//   WEBHOOK_TIMEOUT_MS, WEBHOOK_POLL_MS, WEBHOOK_LEASE_TTL_MS       (10000, 1000, 30000)
//   WEBHOOK_CONCURRENCY, WEBHOOK_RETENTION_MS                      (16, 7 days)
//   NATS_USER, NATS_PASSWORD, NATS_TOKEN, NATS_NKEY_SEED, NATS_CREDS_FILE   NATS credentials (none)
//   NATS_TLS_CA, NATS_TLS_CERT, NATS_TLS_KEY                                NATS TLS files (none)
import type { BrokerOptions, Middleware } from "moleculer";
import { CONFIG_KEY, config as defaultConfig, type Config } from "./src/config.ts";
import { checkNatsAuthorization, natsConnectionOptions } from "./src/nats-options.ts";
import { batchNatsWrites } from "./src/nats-write-batching.ts";
import { adminKeysOf, adminSignatureMiddleware } from "./src/admin-signature.ts";
import { SwitchboardRegenerator } from "./src/error-regenerator.ts";
import { ROUTES } from "./src/gateway/routes.ts";
import { placementMiddleware, registerWorkspaceShard } from "./src/placement/broker-wiring.ts";
import { moleculerMiddlewares } from "./src/request-metrics.ts";
import { untrackFailedRemoteCalls } from "./src/timed-out-calls.ts";

// The WorkspaceShard strategy runs on the calling node: every process registers it.
registerWorkspaceShard();

/** The actions behind the admin routes: callable over the bus only with the admin key's signature. */
export const ADMIN_ACTIONS: ReadonlySet<string> = new Set(
  ROUTES.flatMap((r) => (r.auth === "admin" && r.action ? [r.action] : [])),
);

/** The transporter's options (its URL may carry credentials) kept out of what `$node.options` shows:
 * Moleculer reads them, JSON skips them. */
function withHiddenOptions<T extends object>(transporter: T, options: object): T {
  return Object.defineProperty(transporter, "options", { value: options, enumerable: false });
}

/** Fails the start with NatsAuthorizationError when NATS refuses the node's credentials: the
 * transporter alone would retry forever and the node would look merely slow. */
function natsAuthCheck(cfg: Config): Middleware {
  return {
    name: "NatsAuthCheck",
    async starting() {
      await checkNatsAuthorization(cfg);
    },
  } as Middleware;
}

export function brokerOptions(
  cfg: Config = defaultConfig,
  overrides: Partial<BrokerOptions> = {},
): BrokerOptions {
  batchNatsWrites();
  return {
    // Read back by services through configOf(broker): several brokers in one process (tests) differ.
    [CONFIG_KEY]: cfg,
    namespace: cfg.namespace,
    nodeID: cfg.nodeId,
    transporter: withHiddenOptions({ type: "NATS" }, natsConnectionOptions(cfg)),
    logLevel: cfg.logLevel as BrokerOptions["logLevel"],
    logger: { type: "Console", options: { formatter: "short", colors: process.stdout.isTTY } },
    requestTimeout: cfg.requestTimeoutMs,
    heartbeatInterval: Math.max(1, Math.round(cfg.heartbeatIntervalMs / 1000)),
    heartbeatTimeout: Math.max(2, Math.round(cfg.heartbeatTimeoutMs / 1000)),
    // The strategy must see every call: a caller that hosts `session` would otherwise call itself.
    registry: { preferLocal: false, strategy: "RoundRobin" },
    retryPolicy: { enabled: false },
    errorRegenerator: new SwitchboardRegenerator(),
    metrics: { enabled: true, reporter: [] },
    // Moleculer's middlewares are listed after ours (the order it adds them in), so that its request
    // metrics can be trimmed to counters (src/request-metrics.ts).
    internalMiddlewares: false,
    tracking: { enabled: true, shutdownTimeout: 10000 },
    // Gives every broker its placement layer (KV mirror read by the WorkspaceShard strategy).
    middlewares: [
      natsAuthCheck(cfg),
      placementMiddleware(cfg),
      adminSignatureMiddleware(adminKeysOf(cfg.adminApiKey, cfg.adminPublicKey), ADMIN_ACTIONS),
      ...moleculerMiddlewares(cfg.moleculerMetrics),
      untrackFailedRemoteCalls(),
    ],
    ...overrides,
  } as BrokerOptions;
}

export default brokerOptions();
