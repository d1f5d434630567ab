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
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { hostname } from "node:os";
import { join, relative, resolve } from "node:path";
import { createInterface } from "node:readline";
import { freePort, ROOT, startMongoWire, startNats, type RunningServer } from "../src/dev/servers.ts";
import { redactUrl } from "../src/redact.ts";
import { availableServices, NODE_STARTED_MARK } from "../src/node.ts";
import { assertAdminKeyStrength } from "../src/gateway/keys.ts";

const GATEWAY_SERVICES = ["api", "io", "accounts", "webhooks"];
const WORKER_SERVICES = ["session"];
/** From spawning the nodes to the ready line. */
const READY_TIMEOUT_MS = 120_000;
/** A node gets this long to stop gracefully (workers drain their sessions) before SIGKILL. */
const NODE_STOP_TIMEOUT_MS = 20_000;
const PROGRESS_EVERY_MS = 5_000;
const TAIL_LINES = 40;

const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
const say = (msg: string) => console.log(`[start] ${msg}`);
const warn = (msg: string) => console.error(`[start] ${msg}`);

/** Every process started here (and their descendants) inherits this marker; the final sweep uses it. */
const RUN_MARK = `SWITCHBOARD_RUN=${randomBytes(8).toString("hex")}`;

class StartError extends Error {}

/** A path relative to the project when it lies inside it. */
function shortPath(path: string): string {
  const rel = relative(ROOT, path);
  return rel && !rel.startsWith("..") ? rel : path;
}

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0)
    throw new StartError(`${name} must be a non-negative integer, got "${raw}"`);
  return n;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A child process whose output is kept (last lines) and shown with a prefix. */
class Child {
  readonly tail: string[] = [];
  readonly exited: Promise<Exit>;
  exit?: Exit;
  /** Resolves when a line matching `mark` has been printed. */
  private markSeen?: () => void;
  readonly marked: Promise<void>;

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
    /** Shown before each line of its output; undefined keeps the output quiet (tail only). */
    prefix: string | undefined,
    mark?: string,
  ) {
    this.marked = new Promise((res) => (this.markSeen = res));
    const onLine = (line: string, err: boolean) => {
      this.tail.push(line);
      if (this.tail.length > TAIL_LINES) this.tail.shift();
      if (mark && line.includes(mark)) this.markSeen?.();
      if (prefix !== undefined) (err ? process.stderr : process.stdout).write(`${prefix} ${line}\n`);
    };
    if (this.proc.stdout) createInterface({ input: this.proc.stdout }).on("line", (l) => onLine(l, false));
    if (this.proc.stderr) createInterface({ input: this.proc.stderr }).on("line", (l) => onLine(l, true));
    this.exited = new Promise((res) => {
      this.proc.once("exit", (code, signal) => {
        this.exit = { code, signal };
        res(this.exit);
      });
      this.proc.once("error", (err) => {
        this.tail.push(`could not run: ${err.message}`);
        this.exit = { code: null, signal: null };
        res(this.exit);
      });
    });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  describeExit(): string {
    const e = this.exit;
    const how = !e ? "is running" : e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
    const last = this.tail.slice(-15).map((l) => `    ${l}`);
    return `${this.name} (pid ${this.pid}) ${how}${last.length ? "; its last output:\n" + last.join("\n") : ""}`;
  }

  /** Signals the child's whole process group (it was spawned detached, so it leads one). */
  signalGroup(sig: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, sig);
    } catch {
      // ESRCH: the group is already gone.
    }
  }
}

/** The servers and nodes of this run. */
class Cluster {
  readonly servers: { name: string; server: RunningServer; child: Child }[] = [];
  readonly nodes: Child[] = [];
  private pendingServers: Promise<unknown>[] = [];
  stopping = false;
  /** Rejects when a process this run depends on dies. */
  private failed!: (err: Error) => void;
  readonly failure = new Promise<never>((_, rej) => (this.failed = rej));
  private ready = false;

  constructor() {
    this.failure.catch(() => undefined);
  }

  markReady(): void {
    this.ready = true;
  }

  async startServer(
    name: string,
    start: () => Promise<RunningServer>,
    dataDir: string,
  ): Promise<RunningServer> {
    const pending = start();
    this.pendingServers.push(pending.catch(() => undefined));
    const server = await pending;
    // Its log stays quiet; the last lines are kept as the cause should it die.
    const child = new Child(name, server.process, undefined);
    this.servers.push({ name, server, child });
    say(`${name} started as pid ${child.pid}: ${server.url} (data ${shortPath(dataDir)})`);
    void child.exited.then(() => {
      if (!this.stopping) this.failed(new StartError(child.describeExit()));
    });
    return server;
  }

  spawnNode(name: string, env: Record<string, string>, critical: boolean, prefixWidth: number): Child {
    const proc = spawn(process.execPath, ["--import", "tsx", join(ROOT, "scripts", "node.ts")], {
      cwd: ROOT,
      env: { ...process.env, ...env, SWITCHBOARD_EXIT_WITH_PARENT: "1" },
      // Own process group: Ctrl-C at the terminal reaches this script only, which stops the nodes in order.
      detached: true,
      // stdin stays open and unused: the node stops if this script dies and the pipe closes.
      stdio: ["pipe", "pipe", "pipe"],
    });
    const child = new Child(name, proc, `[${name}]`.padEnd(prefixWidth + 2), NODE_STARTED_MARK);
    this.nodes.push(child);
    say(`${name} started as pid ${child.pid} (SERVICES=${env.SERVICES})`);
    void child.exited.then(() => {
      if (this.stopping) return;
      if (!this.ready || critical) this.failed(new StartError(child.describeExit()));
      else warn(`${child.describeExit()}\n[start] the cluster continues without ${name}`);
    });
    return child;
  }

  /** Stops the nodes (gracefully, then SIGKILL), then the servers, then sweeps leftovers. */
  async stop(): Promise<void> {
    this.stopping = true;
    const running = this.nodes.filter((n) => n.alive);
    if (running.length) say(`stopping ${running.map((n) => n.name).join(", ")}`);
    await Promise.all(
      this.nodes.map(async (node) => {
        if (node.alive) {
          node.signalGroup("SIGTERM");
          const timer = setTimeout(() => {
            warn(`${node.name} did not stop within ${NODE_STOP_TIMEOUT_MS / 1000} s: SIGKILL`);
            node.signalGroup("SIGKILL");
          }, NODE_STOP_TIMEOUT_MS);
          await node.exited;
          clearTimeout(timer);
        }
        // Whatever the node left in its group (e.g. a browser) goes with it.
        node.signalGroup("SIGKILL");
      }),
    );
    await Promise.allSettled(this.pendingServers);
    if (this.servers.length) say(`stopping ${this.servers.map((s) => s.name).join(", ")}`);
    await Promise.all(this.servers.map((s) => s.server.stop()));
    await sweepLeftovers();
  }
}

/** Processes (other than this one) whose environment carries RUN_MARK: started by this run, still alive. */
function leftoverPids(): number[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return []; // not Linux: the process groups above are all there is
  }
  const pids: number[] = [];
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${pid}/environ`, "latin1");
      if (env.split("\0").includes(RUN_MARK)) pids.push(pid);
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

async function sweepLeftovers(): Promise<void> {
  const deadline = Date.now() + 3000;
  for (let pids = leftoverPids(); pids.length; pids = leftoverPids()) {
    if (Date.now() > deadline) {
      warn(`could not kill leftover processes: ${pids.join(", ")}`);
      return;
    }
    for (const pid of pids) {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, "latin1").split("\0").join(" ").trim();
        process.kill(pid, "SIGKILL");
        warn(`killed leftover process ${pid}: ${cmd.slice(0, 120)}`);
      } catch {
        // already gone
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Resolves once `check` returns a truthy value, reporting progress; rejects on the cluster's failure
 * or after the deadline. */
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
  assertAdminKeyStrength(process.env.ADMIN_API_KEY ?? "");
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
