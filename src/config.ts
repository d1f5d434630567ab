// Every setting of a Switchboard node, read from the environment once. The README's configuration
// table mirrors this file; moleculer.config.ts and the services read `config`, never process.env.
import { hostname } from "node:os";
import { DEFAULT_LOAD_FACTOR } from "./placement/hrw.ts";
import { FENCE_STOP_BUDGET_MS } from "./placement/liveness.ts";
import { MOLECULER_METRICS, type MoleculerMetrics } from "./request-metrics.ts";

/** Names of the environment variables loadConfig() reads (filled as it reads them). */
const envNamesRead = new Set<string>();

function str(name: string, fallback: string): string {
  envNamesRead.add(name);
  const v = process.env[name];
  return v === undefined || v === "" ? fallback : v;
}

function int(name: string, fallback: number): number {
  envNamesRead.add(name);
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  // Whole numbers only: "0.5" floored to 0 means "no limit" for a quota, and "1e3" or "5s" are guesses.
  if (!/^\s*[0-9]+\s*$/.test(raw))
    throw new Error(`${name} must be a non-negative number, got "${raw}" (a whole one, without units)`);
  return Number(raw);
}

/** A duration that may not be 0: the timer it arms would fire at once, every time. */
function positiveMs(name: string, fallback: number): number {
  const ms = int(name, fallback);
  if (ms < 1) throw new Error(`${name} must be at least 1 (ms), got "${process.env[name]}"`);
  return ms;
}

/** A TCP port; 0 has the meaning the setting gives it (a free port, or no listener). */
function port(name: string, fallback: number): number {
  const p = int(name, fallback);
  if (p > 65535) throw new Error(`${name} must be a port from 0 to 65535, got "${process.env[name]}"`);
  return p;
}

/** The bounded-load factor c. Below 1 the nodes' bounds can add up to fewer workspaces than there are,
 * so every node is at its bound and placement falls back to plain HRW, ignoring load (src/placement/hrw.ts). */
function loadFactor(name: string): number {
  const raw = str(name, String(DEFAULT_LOAD_FACTOR));
  const c = Number(raw);
  if (!Number.isFinite(c) || c < 1)
    throw new Error(`${name} must be a number of at least 1 (with a decimal point), got "${raw}"`);
  return c;
}

/** Refuses timings of the liveness lease and the Moleculer heartbeat that make nodes fence or flap. */
function checkLivenessTimings(cfg: Config): void {
  const { leaseRenewMs: renew, leaseTtlMs: ttl } = cfg;
  // The margin a lease term starts with (Liveness.marginFor): a worker fences itself at its last
  // renewal + TTL − margin, so the next renewal must land before that.
  const margin = Math.min(Math.floor(ttl / 4), FENCE_STOP_BUDGET_MS);
  if (ttl <= renew + margin)
    throw new Error(
      `LEASE_TTL_MS (${ttl}) must exceed LEASE_RENEW_MS (${renew}) plus the fence margin (${margin} ms): a worker would fence itself before each renewal`,
    );
  // Moleculer counts both in whole seconds, rounded as moleculer.config.ts does.
  const { heartbeatIntervalMs: interval, heartbeatTimeoutMs: timeout } = cfg;
  const intervalSec = Math.max(1, Math.round(interval / 1000));
  const timeoutSec = Math.max(2, Math.round(timeout / 1000));
  if (timeout <= interval || timeoutSec <= intervalSec)
    throw new Error(
      `HEARTBEAT_TIMEOUT_MS (${timeout}) must exceed HEARTBEAT_INTERVAL_MS (${interval}), also in the whole seconds Moleculer uses (${timeoutSec} s, ${intervalSec} s): nodes would be taken for gone between heartbeats`,
    );
}

function flag(name: string, fallback: boolean): boolean {
  const raw = str(name, "").toLowerCase();
  if (raw === "") return fallback;
  if (raw === "1" || raw === "true") return true;
  if (raw === "0" || raw === "false") return false;
  throw new Error(`${name} must be 1/true or 0/false, got "${raw}"`);
}

/** A flag whose default is decided later ("auto" when unset). */
function flagOrAuto(name: string): boolean | "auto" {
  if (str(name, "auto").toLowerCase() === "auto") return "auto";
  try {
    return flag(name, false);
  } catch {
    throw new Error(`${name} must be 1/true, 0/false or auto, got "${str(name, "")}"`);
  }
}

/** One of `values` (the first when unset). */
function oneOf<T extends string>(name: string, values: readonly T[]): T {
  const raw = str(name, values[0]).toLowerCase();
  if (!(values as readonly string[]).includes(raw))
    throw new Error(`${name} must be one of ${values.join(", ")}, got "${raw}"`);
  return raw as T;
}

/** `<prefix>_BASE_MS` and `<prefix>_MAX_MS` of a backoff: 0 would retry at once, every time (all of
 * a webhook's attempts gone in seconds), and a maximum under the base would never be reached. */
function backoff<T>(
  prefix: string,
  base: number,
  max: number,
  shape: (baseMs: number, maxMs: number) => T,
): T {
  const baseMs = positiveMs(`${prefix}_BASE_MS`, base);
  const maxMs = positiveMs(`${prefix}_MAX_MS`, max);
  if (maxMs < baseMs)
    throw new Error(`${prefix}_MAX_MS (${maxMs}) must be at least ${prefix}_BASE_MS (${baseMs})`);
  return shape(baseMs, maxMs);
}

/** Engines a node can run (src/engines/index.ts registers them; a unit spec checks the two agree). */
export const ENGINES = ["webjs", "simulated"] as const;

/** Moleculer's log levels, the first the default. */
const LOG_LEVELS = ["info", "fatal", "error", "warn", "debug", "trace"] as const;

function list(name: string, fallback: string): string[] {
  return str(name, fallback)
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

export const ALL_SERVICES = ["api", "io", "accounts", "session", "webhooks"] as const;

export interface Config {
  /** Moleculer node id. @default `<hostname>-<pid>` */
  nodeId: string;
  /** Moleculer namespace; clusters with different namespaces share NATS without seeing each other.
   * Also prefixes the JetStream KV buckets (except the default, whose buckets are `placement`/`nodes`).
   * @default switchboard */
  namespace: string;
  /** NATS server (transporter and JetStream KV); comma list for a cluster; credentials in the URL are
   * used by both connections. @default nats://127.0.0.1:4222 */
  natsUrl: string;
  /** Port of a tiny GET /health/live listener for container healthchecks of nodes without `api`
   * (src/health-port.ts); 0: none. @default 0 */
  healthPort: number;
  /** NATS credentials and TLS files, turned into connection options by src/nats-options.ts. @default none */
  nats: NatsSecurity;
  /** MongoDB connection string (database name in the path). @default mongodb://127.0.0.1:27017/switchboard */
  mongoUrl: string;
  /** Connections per MongoClient (each service of a node has one); a `maxPoolSize` in MONGO_URL wins.
   * @default 10 */
  mongoPoolSize: number;
  /** Services this node runs. @default all of them */
  services: string[];
  /** Gateway HTTP port. @default 3000 */
  port: number;
  /** Default engine of new accounts. @default webjs */
  engine: string;
  /** Admin API key; empty disables admin routes. */
  adminApiKey: string;
  /** Public half of the admin key's signing pair, for nodes that must verify admin calls without
   * holding the admin key (src/admin-signature.ts); derived from adminApiKey when that is set. */
  adminPublicKey: string;
  logLevel: string;
  /** Sessions this worker accepts (placement weight and bound). @default 50 */
  sessionCapacity: number;
  /** Concurrent engine starts per worker (Chromium start storms freeze hosts). @default 2 */
  startConcurrency: number;
  qr: {
    /** Validity of the first QR. @default 60000 */
    firstTtlMs: number;
    /** Validity of each refreshed QR. @default 20000 */
    refreshMs: number;
    /** QRs shown before failed/qr_timeout. @default 6 */
    max: number;
  };
  /** Moleculer heartbeat interval / timeout; the timeout must exceed the interval. @default 2000 / 6000 */
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  /** Moleculer request timeout. @default 15000 */
  requestTimeoutMs: number;
  /** Liveness lease: renewed every `leaseRenewMs`, expires after `leaseTtlMs`. @default 500 / 3500
   * A dead worker's sessions move once its lease expires (the TTL bounds failover), while a node
   * frozen for 2 s (GC pause, network blip) still renews in time: TTL − fence margin (250 ms) −
   * renewal period leaves it 2.75 s. The TTL must exceed the renewal period plus that margin. */
  leaseRenewMs: number;
  leaseTtlMs: number;
  /** Reconciler period. @default 3000 */
  reconcileMs: number;
  /** Bounded-load factor c of placement; at least 1. @default 1.25 */
  loadFactor: number;
  /** Workspaces moved at a time by rebalance. @default 5 */
  rebalanceBatch: number;
  /** Path of the Chromium binary for the webjs engine. @default /usr/bin/chromium */
  chromiumPath: string;
  /** Each webjs session's Chromium as one process (--single-process): about a third less memory per
   * session, without the renderer sandbox. "auto": exactly where the sandbox cannot run anyway
   * (root, no user namespaces). @default "auto" */
  chromiumSingleProcess: boolean | "auto";
  /** Startup watchdog of an engine. @default 60000 */
  startupTimeoutMs: number;
  /** Per-key REST rate limit (requests per minute). @default 600 */
  rateLimitPerMinute: number;
  /** CORS origins for the gateway ("*" or comma list; empty disables CORS). @default "" */
  corsOrigins: string;
  /** Root of the per-session browser profiles; each node keeps its own under it (nodeProfileDir).
   * @default <tmp>/switchboard-profiles */
  profileDir: string;
  /** Webhook delivery attempts before an event is marked dead. @default 20 (about 30–60 min of retries at the default backoff) */
  webhookMaxAttempts: number;
  /** Delay after the first failed attempt, doubled per attempt, with jitter. @default 1000 */
  webhookBackoffBaseMs: number;
  /** Upper bound of a retry delay. @default 300000 */
  webhookBackoffMaxMs: number;
  /** Timeout of one webhook HTTP request. @default 10000 */
  webhookTimeoutMs: number;
  /** Tick of the delivery loop (due retries), poll of the event log, renewal of recorder slots.
   * @default 1000 */
  webhookPollMs: number;
  /** How often a webhooks node reads every pending outbox row: work it was not told of (a crashed
   * node's endpoints). @default max(5 × webhookPollMs, 2000) */
  webhookScanMs: number;
  /** Lease of an endpoint's delivery queue (one node delivers it at a time). @default 30000 */
  webhookLeaseTtlMs: number;
  /** Webhook requests in flight per node. @default 100 */
  webhookConcurrency: number;
  /** Of those, at most this many for one workspace (0: no bound). @default 0 */
  webhookWorkspaceConcurrency: number;
  /** Delivered and dead webhook deliveries are kept this long (0: forever). @default 604800000 (7 days) */
  webhookRetentionMs: number;
  /** Non-public addresses webhooks may reach: `true`, or a comma list of CIDRs/addresses. @default "" (none) */
  webhookAllowPrivate: string;
  /** Bearer token GET /metrics requires; empty: metrics are public. @default "" */
  metricsToken: string;
  /** Moleculer's own metrics: `requests` (request and error counts per action) or `full` (also request
   * time histograms, active requests, events, transit and transporter packets; a tenth of a gateway's
   * CPU). @default requests */
  moleculerMetrics: MoleculerMetrics;
  /** Wrong API keys a client address may present per minute before it is refused (429) unread; 0: no limit. @default 20 */
  authFailuresPerMinute: number;
  /** How often a gateway re-checks the key of each open socket (through its key cache) and drops the
   * sockets of a revoked key, should the revocation broadcast have been missed; 0: never. @default 30000 */
  socketKeyCheckMs: number;
  /** Key sealing auth state and webhook secrets at rest (64 hex characters or base64 of 32 bytes);
   * required when NODE_ENV=production; empty stores them unsealed. @default "" */
  secretsKey: string;
  /** Older keys that still open what they sealed (rotation). @default [] */
  secretsKeyPrevious: string[];
  /** Account events are kept in the event log (replay, webhooks catching up) this long; 0: forever. The
   * last event of each workspace is always kept. @default 604800000 (7 days) */
  eventsRetentionMs: number;
  /** Per-workspace limits (0: unlimited); the admin may override them per workspace. */
  quotas: { accounts: number; webhooks: number; sockets: number; socketCallsPerMinute: number };
  /** Largest media file a message may carry (inline or fetched from a URL). @default 16777216 (16 MB) */
  mediaMaxBytes: number;
  /** How long a media URL fetch may take. @default 30000 */
  mediaFetchTimeoutMs: number;
  /** How long an idempotency key holds: a repeat within it answers the first result. @default 86400000 (24 h) */
  idempotencyTtlMs: number;
  /** Received media is kept (GET …/messages/:messageId/media) this long, then deleted; 0: not kept.
   * @default 86400000 (24 h) */
  incomingMediaRetentionMs: number;
  /** Simulated engine: delay of each receipt after a send (sent → delivered → read). @default 500 */
  simulatedAckMs: number;
  /** Least time between two sends of one account (plus up to half of it at random); 0: no pacing.
   * @default 1000 */
  sendMinGapMs: number;
  /** Simulated engine: how long a send takes (WhatsApp's round trip). @default 0 */
  simulatedSendMs: number;
  /** Delay before restarting an account that failed for a retryable reason, doubled per failure in a row. @default 5000 */
  failedRetryBaseMs: number;
  /** Upper bound of that delay. @default 300000 */
  failedRetryMaxMs: number;
}

export interface NatsSecurity {
  /** NATS_USER / NATS_PASSWORD: user and password authentication. @default "" */
  user: string;
  password: string;
  /** NATS_TOKEN: token authentication. @default "" */
  token: string;
  /** NATS_NKEY_SEED: NKey seed (`SU...`). @default "" */
  nkeySeed: string;
  /** NATS_CREDS_FILE: path of a `.creds` file (JWT + NKey seed). @default "" */
  credsFile: string;
  /** NATS_TLS_CA / NATS_TLS_CERT / NATS_TLS_KEY: PEM files; a CA alone turns TLS on with server
   * verification, cert + key add a client certificate. @default "" */
  tlsCa: string;
  tlsCert: string;
  tlsKey: string;
}

/** A setting production must not run without (NODE_ENV=production); elsewhere empty is allowed. */
function requiredInProduction(name: string): string {
  const value = str(name, "");
  const production = str("NODE_ENV", "") === "production";
  if (!value && production)
    throw new Error(`${name} is required when NODE_ENV=production (generate one: openssl rand -base64 32)`);
  return value;
}

export function loadConfig(): Config {
  const webhookConcurrency = Math.max(1, int("WEBHOOK_CONCURRENCY", 100));
  const webhookPollMs = Math.max(1, int("WEBHOOK_POLL_MS", 1000));
  const webhookTimeoutMs = Math.max(1, int("WEBHOOK_TIMEOUT_MS", 10000));
  const webhookLeaseTtlMs = Math.max(1, int("WEBHOOK_LEASE_TTL_MS", 30000));
  // An attempt starts only while the endpoint's lease outlasts its timeout, and a held lease may be down
  // to half its TTL before it is renewed: at or past that, deliveries would stall (rows stay pending).
  if (webhookTimeoutMs >= webhookLeaseTtlMs / 2)
    throw new Error(
      `WEBHOOK_TIMEOUT_MS (${webhookTimeoutMs}) must be under half of WEBHOOK_LEASE_TTL_MS (${webhookLeaseTtlMs}): an attempt starts only while the endpoint's lease outlasts its timeout`,
    );
  const cfg: Config = {
    nodeId: str("NODE_ID", `${hostname()}-${process.pid}`),
    namespace: str("NAMESPACE", "switchboard"),
    natsUrl: str("NATS_URL", "nats://127.0.0.1:4222"),
    healthPort: port("HEALTH_PORT", 0),
    nats: {
      user: str("NATS_USER", ""),
      password: str("NATS_PASSWORD", ""),
      token: str("NATS_TOKEN", ""),
      nkeySeed: str("NATS_NKEY_SEED", ""),
      credsFile: str("NATS_CREDS_FILE", ""),
      tlsCa: str("NATS_TLS_CA", ""),
      tlsCert: str("NATS_TLS_CERT", ""),
      tlsKey: str("NATS_TLS_KEY", ""),
    },
    mongoUrl: str("MONGO_URL", "mongodb://127.0.0.1:27017/switchboard"),
    mongoPoolSize: Math.max(1, int("MONGO_POOL_SIZE", 10)),
    services: list("SERVICES", ALL_SERVICES.join(",")),
    port: port("PORT", 3000),
    engine: oneOf("ENGINE", ENGINES),
    adminApiKey: str("ADMIN_API_KEY", ""),
    adminPublicKey: str("ADMIN_PUBLIC_KEY", ""),
    logLevel: oneOf("LOG_LEVEL", LOG_LEVELS),
    sessionCapacity: int("SESSION_CAPACITY", 50),
    startConcurrency: Math.max(1, int("START_CONCURRENCY", 2)),
    qr: {
      firstTtlMs: positiveMs("QR_FIRST_TTL_MS", 60000),
      refreshMs: positiveMs("QR_REFRESH_MS", 20000),
      max: Math.max(1, int("QR_MAX", 6)),
    },
    heartbeatIntervalMs: int("HEARTBEAT_INTERVAL_MS", 2000),
    heartbeatTimeoutMs: int("HEARTBEAT_TIMEOUT_MS", 6000),
    requestTimeoutMs: int("REQUEST_TIMEOUT_MS", 15000),
    leaseRenewMs: positiveMs("LEASE_RENEW_MS", 500),
    leaseTtlMs: positiveMs("LEASE_TTL_MS", 3500),
    reconcileMs: int("RECONCILE_MS", 3000),
    loadFactor: loadFactor("LOAD_FACTOR"),
    rebalanceBatch: Math.max(1, int("REBALANCE_BATCH", 5)),
    chromiumPath: str("CHROMIUM_PATH", "/usr/bin/chromium"),
    chromiumSingleProcess: flagOrAuto("CHROMIUM_SINGLE_PROCESS"),
    startupTimeoutMs: positiveMs("STARTUP_TIMEOUT_MS", 60000),
    rateLimitPerMinute: int("RATE_LIMIT_PER_MINUTE", 600),
    corsOrigins: str("CORS_ORIGINS", ""),
    profileDir: str("PROFILE_DIR", `${process.env.TMPDIR || "/tmp"}/switchboard-profiles`),
    webhookMaxAttempts: Math.max(1, int("WEBHOOK_MAX_ATTEMPTS", 20)),
    ...backoff("WEBHOOK_BACKOFF", 1000, 300000, (baseMs, maxMs) => ({
      webhookBackoffBaseMs: baseMs,
      webhookBackoffMaxMs: maxMs,
    })),
    webhookTimeoutMs,
    webhookPollMs,
    webhookScanMs: Math.max(1, int("WEBHOOK_SCAN_MS", Math.max(5 * webhookPollMs, 2000))),
    webhookLeaseTtlMs,
    webhookConcurrency,
    webhookWorkspaceConcurrency: Math.max(0, int("WEBHOOK_WORKSPACE_CONCURRENCY", 0)),
    webhookRetentionMs: int("WEBHOOK_RETENTION_MS", 7 * 24 * 3600 * 1000),
    webhookAllowPrivate: str("WEBHOOK_ALLOW_PRIVATE", ""),
    metricsToken: str("METRICS_TOKEN", ""),
    moleculerMetrics: oneOf("MOLECULER_METRICS", MOLECULER_METRICS),
    authFailuresPerMinute: int("AUTH_FAILURES_PER_MINUTE", 20),
    socketKeyCheckMs: int("SOCKET_KEY_CHECK_MS", 30000),
    secretsKey: requiredInProduction("SECRETS_KEY"),
    secretsKeyPrevious: list("SECRETS_KEY_PREVIOUS", ""),
    eventsRetentionMs: int("EVENTS_RETENTION_MS", 7 * 24 * 3600 * 1000),
    quotas: {
      accounts: int("QUOTA_ACCOUNTS", 100),
      webhooks: int("QUOTA_WEBHOOKS", 20),
      sockets: int("QUOTA_SOCKETS", 100),
      socketCallsPerMinute: int("QUOTA_SOCKET_CALLS_PER_MINUTE", 600),
    },
    mediaMaxBytes: Math.max(1, int("MEDIA_MAX_BYTES", 16 * 1024 * 1024)),
    mediaFetchTimeoutMs: Math.max(1, int("MEDIA_FETCH_TIMEOUT_MS", 30000)),
    idempotencyTtlMs: Math.max(1, int("IDEMPOTENCY_TTL_MS", 24 * 3600 * 1000)),
    incomingMediaRetentionMs: int("INCOMING_MEDIA_RETENTION_MS", 24 * 3600 * 1000),
    simulatedAckMs: int("SIMULATED_ACK_MS", 500),
    simulatedSendMs: int("SIMULATED_SEND_MS", 0),
    sendMinGapMs: int("SEND_MIN_GAP_MS", 1000),
    ...backoff("FAILED_RETRY", 5000, 300000, (baseMs, maxMs) => ({
      failedRetryBaseMs: baseMs,
      failedRetryMaxMs: maxMs,
    })),
  };
  checkLivenessTimings(cfg);
  return cfg;
}

export const config: Config = loadConfig();

/** Every environment variable of a node's configuration (docker-compose and the README are checked
 * against it). */
export const ENV_NAMES: readonly string[] = [...envNamesRead];

/** The configuration a broker was built with (see moleculer.config.ts); the process default otherwise. */
/** Where a broker's options keep its node's Config: a symbol, so `$node.options` (JSON, for any peer
 * to read) never carries the admin key, database URL or other secrets. */
export const CONFIG_KEY = Symbol.for("switchboard.config");

export function configOf(broker: { options: object }): Config {
  return (broker.options as { [CONFIG_KEY]?: Config })[CONFIG_KEY] ?? config;
}

/** Name of a JetStream KV bucket of this cluster (`placement`, `nodes`), prefixed outside the default namespace. */
export function bucketName(cfg: Config, bucket: string): string {
  return cfg.namespace === "switchboard" ? bucket : `${cfg.namespace}_${bucket}`;
}

/**
 * Where a node keeps its sessions' browser profiles: a directory of its own under PROFILE_DIR. A
 * session's Chromium processes are found (and killed, its profile removed) by their profile path, so
 * two workers on one host sharing a directory would let a stale owner's stop kill the browser of the
 * session's new owner and delete its profile.
 */
export function nodeProfileDir(profileDir: string, nodeId: string): string {
  return `${profileDir.replace(/\/+$/, "")}/${nodeId.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+$/, "_")}`;
}
