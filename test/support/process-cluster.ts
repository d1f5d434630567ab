// A cluster of real worker PROCESSES (`tsx scripts/node.ts`, configured by environment as in
// production) on a nats-server + FerretDB pair of its own, on fixed ports so a test can restart either
// server in place. The test process joins with an observer broker (accounts service, event recorder)
// to drive accounts and to poll every node's `session.local`.
//   const pc = new ProcessCluster(); await pc.startServers();
//   await Promise.all(["w1","w2"].map((id) => pc.startWorker(id)));
//   const obs = await pc.observer(); ... pc.kill("w1", "SIGKILL"); ... await pc.stop();
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ServiceBroker, type ServiceSchema } from "moleculer";
import { brokerOptions } from "../../moleculer.config.ts";
import { loadConfig, type Config } from "../../src/config.ts";
import { freePort, ROOT, startMongoWire, startNats, type RunningServer } from "../../src/dev/servers.ts";
import { processesMentioning } from "../../src/engines/webjs/chromium.ts";
import { NODE_STARTED_MARK } from "../../src/node.ts";
import { waitFor } from "./wait.ts";

/** Fast, test-sized timings for worker processes (env names of src/config.ts). */
export const PROCESS_TIMINGS: Record<string, string> = {
  HEARTBEAT_INTERVAL_MS: "1000",
  HEARTBEAT_TIMEOUT_MS: "3000",
  REQUEST_TIMEOUT_MS: "30000",
  LEASE_RENEW_MS: "500",
  LEASE_TTL_MS: "2000",
  RECONCILE_MS: "500",
  START_CONCURRENCY: "4",
  QR_FIRST_TTL_MS: "120000",
  QR_REFRESH_MS: "60000",
  SEND_MIN_GAP_MS: "0",
};

export interface WorkerProcess {
  nodeId: string;
  child: ChildProcess;
  output: string[];
  exited: Promise<number | null>;
}

// Children die with the test process, whatever way it ends (no orphaned workers or servers).
const children = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

export class ProcessCluster {
  readonly dir = mkdtempSync(join(tmpdir(), "switchboard-pc-"));
  readonly namespace = `pc${randomBytes(4).toString("hex")}`;
  natsPort = 0;
  mongoPort = 0;
  nats?: RunningServer;
  mongo?: RunningServer;
  readonly workers = new Map<string, WorkerProcess>();
  private readonly brokers: ServiceBroker[] = [];

  /** @param timings the workers' timings under `env`: test-sized by default; `{}` runs the defaults of
   * src/config.ts (benches measuring what a deployment gets). */
  constructor(
    readonly env: Record<string, string> = {},
    readonly timings: Record<string, string> = PROCESS_TIMINGS,
  ) {}

  get natsUrl(): string {
    return `nats://127.0.0.1:${this.natsPort}`;
  }

  get mongoUrl(): string {
    return `mongodb://127.0.0.1:${this.mongoPort}/${this.namespace}`;
  }

  async startServers(): Promise<void> {
    this.natsPort ||= await freePort();
    this.mongoPort ||= await freePort();
    await Promise.all([this.startNats(), this.startMongo()]);
  }

  async startNats(): Promise<void> {
    this.nats = await startNats(join(this.dir, "nats"), this.natsPort);
    children.add(this.nats.process);
  }

  async startMongo(): Promise<void> {
    this.mongo = await startMongoWire(join(this.dir, "mongo"), this.mongoPort, this.namespace);
    children.add(this.mongo.process);
  }

  async stopNats(): Promise<void> {
    await this.nats?.stop();
    this.nats = undefined;
  }

  async stopMongo(): Promise<void> {
    await this.mongo?.stop();
    this.mongo = undefined;
  }

  /** Spawns a worker process (SERVICES=session by default); resolves once its broker started, or once
   * its output shows `mark`. */
  async startWorker(
    nodeId: string,
    env: Record<string, string> = {},
    mark = `${NODE_STARTED_MARK} ${nodeId}`,
  ): Promise<WorkerProcess> {
    // Node itself with tsx's loader, not the `tsx` CLI: the CLI runs the script in a child process, so
    // SIGKILL / SIGSTOP sent to it would miss the node.
    const node = join(ROOT, "node_modules", ".bin", "node");
    const child = spawn(node, ["--import", "tsx", join(ROOT, "scripts", "node.ts")], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        NODE_ID: nodeId,
        NAMESPACE: this.namespace,
        NATS_URL: this.natsUrl,
        MONGO_URL: this.mongoUrl,
        SERVICES: "session",
        ENGINE: "simulated",
        LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "warn",
        ...this.timings,
        ...this.env,
        ...env,
      },
    });
    children.add(child);
    const output: string[] = [];
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const worker: WorkerProcess = { nodeId, child, output, exited };
    this.workers.set(nodeId, worker);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${nodeId} showed no "${mark}" in 60 s:\n${output.join("")}`)),
        60000,
      );
      const onData = (buf: Buffer) => {
        const text = buf.toString();
        output.push(text);
        if (output.length > 400) output.splice(0, 200);
        if (output.join("").includes(mark)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on("data", onData);
      child.stderr!.on("data", onData);
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${nodeId} exited (${code}) before it started:\n${output.join("")}`));
      });
    });
    return worker;
  }

  kill(nodeId: string, signal: NodeJS.Signals): void {
    this.workers.get(nodeId)?.child.kill(signal);
  }

  /** SIGTERM (the node drains, then exits) and wait for the exit. */
  async stopWorker(nodeId: string, timeoutMs = 30000): Promise<number | null> {
    const w = this.workers.get(nodeId);
    if (!w) return null;
    if (w.child.exitCode === null && w.child.signalCode === null) {
      const force = setTimeout(() => w.child.kill("SIGKILL"), timeoutMs);
      w.child.kill("SIGTERM");
      const code = await w.exited;
      clearTimeout(force);
      this.workers.delete(nodeId);
      return code;
    }
    this.workers.delete(nodeId);
    return w.child.exitCode;
  }

  config(nodeId: string): Config {
    const base = loadConfig();
    const env = { ...this.timings, ...this.env };
    const ms = (name: string, fallback: number) => (env[name] === undefined ? fallback : Number(env[name]));
    return {
      ...base,
      nodeId,
      namespace: this.namespace,
      natsUrl: this.natsUrl,
      mongoUrl: this.mongoUrl,
      engine: "simulated",
      services: [],
      logLevel: process.env.TEST_LOG_LEVEL ?? "warn",
      heartbeatIntervalMs: ms("HEARTBEAT_INTERVAL_MS", base.heartbeatIntervalMs),
      heartbeatTimeoutMs: ms("HEARTBEAT_TIMEOUT_MS", base.heartbeatTimeoutMs),
      requestTimeoutMs: 30000,
      leaseRenewMs: ms("LEASE_RENEW_MS", base.leaseRenewMs),
      leaseTtlMs: ms("LEASE_TTL_MS", base.leaseTtlMs),
      reconcileMs: ms("RECONCILE_MS", base.reconcileMs),
    };
  }

  /** A broker in this process (not a worker) running `services`, started. */
  async observer(nodeId: string, services: ServiceSchema<any>[]): Promise<ServiceBroker> {
    // Short graceful stop: calls still in flight to killed workers must not hold the teardown.
    const broker = new ServiceBroker(
      brokerOptions(this.config(nodeId), { tracking: { enabled: true, shutdownTimeout: 1000 } }),
    );
    for (const s of services) broker.createService(s);
    await broker.start();
    this.brokers.push(broker);
    return broker;
  }

  async stop(): Promise<void> {
    // Brokers here first, while the workers still answer their in-flight calls.
    await Promise.all(this.brokers.map((b) => b.stop().catch(() => undefined)));
    await Promise.all(
      [...this.workers.values()].map(async (w) => {
        w.child.kill("SIGCONT");
        w.child.kill("SIGKILL");
        await w.exited;
      }),
    );
    this.workers.clear();
    await Promise.all([this.stopNats(), this.stopMongo()]);
    // A killed worker's browsers go a moment after it and may still be writing into their profiles
    // here (ENOTEMPTY on a loaded machine): the removal is tried again until they are gone.
    await waitFor(() => processesMentioning(this.dir).length === 0, {
      what: `no process of ${this.dir} left`,
      timeoutMs: 10000,
    }).catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }
}
