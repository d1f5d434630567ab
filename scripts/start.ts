// `npm start` (after provisioning): a whole Switchboard cluster on this machine.
//   1. nats-server (JetStream) and the MongoDB-wire server (FerretDB) with data under DATA_DIR
//      (default .data/), each on a free port, unless NATS_URL / MONGO_URL point at running servers;
//   2. one gateway node (SERVICES=api,io,accounts,webhooks) and WORKERS worker nodes (SERVICES=session),
//      each a child process running scripts/node.ts in a process group of its own, its output prefixed;
//   3. prints `Switchboard ready: http://127.0.0.1:<PORT> admin key: <key>` once the gateway answers
//      (`admin key: (from ADMIN_API_KEY)` when the key was supplied: it is never printed)
//      GET /health/ready.
// Only services that exist in this checkout are run (the project grows service by service); what was
// waited for is said in the log. SIGINT / SIGTERM stop every process this script started: the nodes
// first (gracefully, SIGKILL after a deadline), then the servers; then any process still carrying this
// run's marker in its environment is killed, so none is left behind. A child dying before the cluster
// is ready (or the gateway or a server dying at any time) stops everything with a non-zero exit.
//
// Settings (besides every node setting of src/config.ts, which the nodes inherit):
//   PORT           gateway HTTP port; 0 picks a free one                 (3000)
//   WORKERS        worker nodes                                          (3)
//   ADMIN_API_KEY  admin key; generated and printed when unset
//   DATA_DIR       data of the embedded servers                          (.data)
//   NATS_URL, MONGO_URL  use these servers and start none
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { freePort, ROOT, startMongoWire, startNats } from "../src/dev/servers.ts";
import { redactUrl } from "../src/redact.ts";
import { availableServices } from "../src/node.ts";
import { assertSecretStrength } from "../src/gateway/keys.ts";
import {
  Child,
  Cluster,
  NODE_STOP_TIMEOUT_MS,
  PROGRESS_EVERY_MS,
  READY_TIMEOUT_MS,
  RUN_MARK,
  StartError,
  elapsed,
  envInt,
  say,
  shortPath,
  warn,
} from "./start-processes.ts";

const GATEWAY_SERVICES = ["api", "io", "accounts", "webhooks"];
const WORKER_SERVICES = ["session"];

async function waitUntil<T>(
  cluster: Cluster,
  what: () => string,
  check: () => Promise<T | undefined>,
  deadline: number,
): Promise<T> {
  let nextProgress = Date.now() + PROGRESS_EVERY_MS;
  for (;;) {
    if (cluster.stopping) throw new StartError("stopped while starting");
    const value = await Promise.race([check(), cluster.failure]);
    if (value) return value;
    if (Date.now() > deadline)
      throw new StartError(`gave up after ${READY_TIMEOUT_MS / 1000} s waiting for ${what()}`);
    if (Date.now() >= nextProgress) {
      say(`${elapsed()}: still waiting for ${what()}`);
      nextProgress = Date.now() + PROGRESS_EVERY_MS;
    }
    await Promise.race([new Promise((r) => setTimeout(r, 200)), cluster.failure]);
  }
}

async function httpStatus(url: string): Promise<{ status: number; body: string } | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return { status: res.status, body: (await res.text()).slice(0, 200) };
  } catch {
    return undefined; // not listening yet
  }
}

/** Fails early when the gateway's port is taken: the readiness probe would otherwise ask a stranger. */
async function assertPortFree(port: number): Promise<void> {
  await new Promise<void>((res, rej) => {
    const srv = createServer();
    srv.once("error", (err: NodeJS.ErrnoException) =>
      rej(
        new StartError(
          err.code === "EADDRINUSE"
            ? `port ${port} is already in use (another Switchboard?): stop it, or set PORT (0 picks a free port)`
            : `port ${port}: ${err.message}`,
        ),
      ),
    );
    srv.listen(port, () => srv.close(() => res()));
  });
}

/** The key sealing secrets at rest for this data folder: made once (mode 0600), then reused, since
 * what it sealed cannot be read without it. */
function secretsKeyIn(dataDir: string): string {
  const file = join(dataDir, "secrets.key");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  mkdirSync(dataDir, { recursive: true });
  const key = randomBytes(32).toString("base64");
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  say(`generated the secrets key in ${shortPath(file)} (keep it: sealed auth state needs it)`);
  return key;
}

async function main(cluster: Cluster): Promise<void> {
  let port = envInt("PORT", 3000);
  if (port === 0) port = await freePort();
  await assertPortFree(port);
  const workers = envInt("WORKERS", 3);
  assertSecretStrength("ADMIN_API_KEY", process.env.ADMIN_API_KEY ?? "");
  assertSecretStrength("METRICS_TOKEN", process.env.METRICS_TOKEN ?? "");
  const adminKey = process.env.ADMIN_API_KEY || `sb_admin_${randomBytes(18).toString("base64url")}`;
  const dataDir = resolve(ROOT, process.env.DATA_DIR || ".data");
  process.env.SWITCHBOARD_RUN = RUN_MARK.split("=")[1];
  say(
    `starting Switchboard: gateway on port ${port}, ${workers} worker(s), ` +
      `admin key ${process.env.ADMIN_API_KEY ? "from ADMIN_API_KEY" : "generated (shown when ready)"}`,
  );

  // 1. Servers.
  const [natsUrl, mongoUrl] = await Promise.all([
    process.env.NATS_URL ||
      cluster
        .startServer(
          "nats-server",
          () => startNats(join(dataDir, "nats"), 0, { detached: true }),
          join(dataDir, "nats"),
        )
        .then((s) => s.url),
    process.env.MONGO_URL ||
      cluster
        .startServer(
          "ferretdb",
          () => startMongoWire(join(dataDir, "mongo"), 0, "switchboard", { detached: true }),
          join(dataDir, "mongo"),
        )
        .then((s) => s.url),
  ]);
  if (process.env.NATS_URL) say(`using NATS at ${redactUrl(process.env.NATS_URL)} (NATS_URL)`);
  if (process.env.MONGO_URL) say(`using MongoDB at ${redactUrl(process.env.MONGO_URL)} (MONGO_URL)`);
  if (cluster.stopping) return;

  // 2. Nodes: what exists of the gateway's and the workers' services.
  const gatewayServices = availableServices(GATEWAY_SERVICES);
  const workerServices = availableServices(WORKER_SERVICES);
  const missing = [...GATEWAY_SERVICES, ...WORKER_SERVICES].filter(
    (s) => !gatewayServices.includes(s) && !workerServices.includes(s),
  );
  if (missing.length) say(`not built yet, so not started: ${missing.join(", ")}`);
  // Short node ids on embedded servers; host-qualified ones on shared servers, where they must be unique.
  const idPrefix = process.env.NATS_URL ? `${hostname()}-` : "";
  const common = {
    NATS_URL: natsUrl,
    MONGO_URL: mongoUrl,
    ADMIN_API_KEY: adminKey,
    PORT: String(port),
    SECRETS_KEY: process.env.SECRETS_KEY || secretsKeyIn(dataDir),
  };
  const width = `worker-${workers}`.length;
  let gateway: Child | undefined;
  if (gatewayServices.length) {
    gateway = cluster.spawnNode(
      "gateway",
      { ...common, NODE_ID: `${idPrefix}gateway`, SERVICES: gatewayServices.join(",") },
      true,
      width,
    );
  } else say("no gateway service exists yet: no gateway node");
  if (workerServices.length) {
    for (let i = 1; i <= workers; i++) {
      cluster.spawnNode(
        `worker-${i}`,
        { ...common, NODE_ID: `${idPrefix}worker-${i}`, SERVICES: workerServices.join(",") },
        false,
        width,
      );
    }
  } else say("no worker service exists yet: no worker nodes");

  // 3. Readiness: every broker joined NATS, then the gateway's /health/ready.
  const deadline = Date.now() + READY_TIMEOUT_MS;
  const joined = new Set<Child>();
  for (const node of cluster.nodes) void node.marked.then(() => joined.add(node));
  await waitUntil(
    cluster,
    () =>
      `brokers to join NATS: ${cluster.nodes
        .filter((n) => !joined.has(n))
        .map((n) => n.name)
        .join(", ")}`,
    async () => joined.size === cluster.nodes.length,
    deadline,
  );
  say(`${elapsed()}: ${cluster.nodes.length} broker(s) joined NATS`);

  const base = `http://127.0.0.1:${port}`;
  let waitedFor: string;
  if (gateway && gatewayServices.includes("api")) {
    let last = "no answer yet";
    waitedFor = await waitUntil(
      cluster,
      () => `${base}/health/ready (${last})`,
      async () => {
        const ready = await httpStatus(`${base}/health/ready`);
        if (ready?.status === 200) return "GET /health/ready answered 200";
        last = ready ? `answered ${ready.status}: ${ready.body}` : "no answer yet";
        return undefined;
      },
      deadline,
    );
  } else {
    waitedFor = "the brokers to join NATS only: no api service exists yet, so nothing listens on the URL";
  }
  if (cluster.stopping) return;
  cluster.markReady();
  say(`${elapsed()}: waited for ${waitedFor}`);
  say(
    `processes: ${[...cluster.servers.map((s) => s.child), ...cluster.nodes].map((c) => `${c.name}=${c.pid}`).join(" ")}`,
  );
  // A key the user supplied is never printed (logs outlive terminals); a generated one must be.
  console.log(
    `Switchboard ready: ${base} admin key: ${process.env.ADMIN_API_KEY ? "(from ADMIN_API_KEY)" : adminKey}`,
  );
  say("Ctrl-C stops everything");
}

const cluster = new Cluster();
let exiting = false;
async function shutdown(why: string, code: number): Promise<void> {
  if (exiting) {
    say(`${why}: already stopping`);
    return;
  }
  exiting = true;
  say(`${why}: stopping every process started here`);
  const hard = setTimeout(() => {
    warn("shutdown took too long; exiting");
    process.exit(code || 1);
  }, NODE_STOP_TIMEOUT_MS + 15_000);
  hard.unref();
  try {
    await cluster.stop();
    say(`stopped after ${elapsed()}`);
  } catch (err) {
    warn(`error while stopping: ${err instanceof Error ? err.message : String(err)}`);
    code ||= 1;
  }
  process.exit(code);
}

process.on("SIGINT", () => void shutdown("SIGINT", 0));
process.on("SIGTERM", () => void shutdown("SIGTERM", 0));
process.on("SIGHUP", () => void shutdown("SIGHUP", 0));
// If whatever launched this script (tsx, npm) is killed outright, its signal never reaches us: stop
// rather than leave a headless cluster behind.
const launcher = process.ppid;
// A closed terminal or pipe must not crash the shutdown that follows.
process.stdout.on("error", () => undefined);
process.stderr.on("error", () => undefined);
setInterval(() => {
  if (process.ppid !== launcher) void shutdown(`launcher (pid ${launcher}) is gone`, 1);
}, 1000).unref();

main(cluster)
  .then(() => cluster.failure)
  .catch((err: unknown) => {
    if (exiting) return;
    warn(
      `FAILED: ${err instanceof StartError ? err.message : err instanceof Error ? err.stack : String(err)}`,
    );
    void shutdown("failure", 1);
  });
