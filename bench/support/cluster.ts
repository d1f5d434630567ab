// A real cluster for benches: nats-server (JetStream) and FerretDB on free ports, and Switchboard
// nodes as child processes (separate event loops, as in production), each configured by environment.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ServiceBroker } from "moleculer";
import { brokerOptions } from "../../moleculer.config.ts";
import { loadConfig } from "../../src/config.ts";
import { ROOT, freePort, startMongoWire, startNats, type RunningServer } from "../../src/dev/servers.ts";

export interface BenchNode {
  nodeId: string;
  process: ChildProcess;
}

export class BenchCluster {
  readonly dir = mkdtempSync(join(tmpdir(), "switchboard-bench-"));
  readonly namespace = `bench${process.pid}`;
  natsUrl = "";
  mongoUrl = "";
  private servers: RunningServer[] = [];
  readonly nodes: BenchNode[] = [];

  /**
   * @param env extra environment of every node
   * @param mongoPoolSize connections per MongoClient (the driver's default is 100; every service of
   * every node has its own client, and FerretDB's SQLite backend stops answering with hundreds of
   * connections writing at once). @default 8
   */
  constructor(
    private readonly env: Record<string, string> = {},
    private readonly mongoPoolSize = 8,
  ) {}

  async startServers(): Promise<void> {
    const nats = await startNats(join(this.dir, "nats"));
    const mongo = await startMongoWire(join(this.dir, "mongo"), 0, this.namespace);
    this.servers.push(nats, mongo);
    this.natsUrl = nats.url;
    this.mongoUrl = `${mongo.url}?maxPoolSize=${this.mongoPoolSize}`;
  }

  /** Starts a node running `services`; resolves once it printed `ready`. */
  async startNode(nodeId: string, services: string[], env: Record<string, string> = {}): Promise<BenchNode> {
    const child = spawn(
      join(ROOT, "node_modules", ".bin", "tsx"),
      [join(ROOT, "bench", "support", "node-process.ts")],
      {
        cwd: ROOT,
        // stdin stays open for the child's lifetime: it stops when the bench process goes away.
        stdio: ["pipe", "pipe", "inherit"],
        env: {
          ...process.env,
          NODE_ID: nodeId,
          NAMESPACE: this.namespace,
          NATS_URL: this.natsUrl,
          MONGO_URL: this.mongoUrl,
          SERVICES: services.join(","),
          LOG_LEVEL: "warn",
          ...this.env,
          ...env,
        },
      },
    );
    await new Promise<void>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`${nodeId} not ready after 60 s:\n${out}`)), 60000);
      child.stdout!.on("data", (b: Buffer) => {
        out += b.toString();
        // BENCH_NODE_LOGS=1 shows the nodes' own log lines (warnings and up) on stderr.
        if (process.env.BENCH_NODE_LOGS) process.stderr.write(b);
        if (out.includes(`ready ${nodeId}`)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`${nodeId} exited (${code}) before ready:\n${out}`));
      });
    });
    const node = { nodeId, process: child };
    this.nodes.push(node);
    return node;
  }

  /** A broker of the bench's own process on the cluster's bus (no services of Switchboard's), not
   * started: the observer or publisher a bench adds its service to. */
  broker(nodeId: string): ServiceBroker {
    return new ServiceBroker(
      brokerOptions({
        ...loadConfig(),
        nodeId,
        namespace: this.namespace,
        natsUrl: this.natsUrl,
        mongoUrl: this.mongoUrl,
        services: [],
        logLevel: "warn",
      }),
    );
  }

  /** Resolves once every node lists `service`, of a bench's own `broker`, among the services it sees:
   * before that, a node skips it when it broadcasts. */
  async knownEverywhere(broker: ServiceBroker, service: string, timeoutMs = 30000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const { nodeId } of this.nodes) {
      for (;;) {
        const services = (await broker
          .call("$node.services", { onlyAvailable: true }, { nodeID: nodeId })
          .catch(() => [])) as { name: string }[];
        if (services.some((svc) => svc.name === service)) break;
        if (Date.now() > deadline)
          throw new Error(`${nodeId} does not know ${service} after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  freePort(): Promise<number> {
    return freePort();
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.nodes.map(
        (n) =>
          new Promise<void>((resolve) => {
            if (n.process.exitCode !== null) return resolve();
            const force = setTimeout(() => n.process.kill("SIGKILL"), 10000);
            n.process.once("exit", () => {
              clearTimeout(force);
              resolve();
            });
            n.process.kill("SIGTERM");
          }),
      ),
    );
    await Promise.all(this.servers.map((s) => s.stop()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
