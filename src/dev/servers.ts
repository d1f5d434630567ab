// Embedded infrastructure for `npm start`, tests and benches: a real nats-server with JetStream and a
// real MongoDB-wire server (FerretDB, built by scripts/provision.mjs), each on a free port with its
// data in a folder of its own. Production points NATS_URL / MONGO_URL at real servers instead.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const FERRETDB_BIN = join(ROOT, ".cache", "bin", "ferretdb");

export interface RunningServer {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

export interface ServerOptions {
  /** Own process group, so a Ctrl-C at the terminal does not stop it before the nodes that use it
   * (`npm start` stops it last). @default false */
  detached?: boolean;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

/** Spawns `cmd` and resolves once a line of its output matches `ready`; rejects with its output if it
 * exits or stays silent past `timeoutMs`. */
function spawnUntil(
  name: string,
  cmd: string,
  args: string[],
  ready: RegExp,
  timeoutMs = 20000,
  detached = false,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ child: ChildProcess; match: RegExpMatchArray }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], detached, env });
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${name} did not become ready in ${timeoutMs} ms; output:\n${out}`));
    }, timeoutMs);
    const onData = (buf: Buffer) => {
      out += buf.toString();
      const match = out.match(ready);
      if (match) {
        clearTimeout(timer);
        child.stdout?.off("data", onData);
        child.stderr?.off("data", onData);
        child.stdout?.resume();
        child.stderr?.resume();
        resolve({ child, match });
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`${name} could not start (${cmd}): ${err.message}`));
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (code ${code}, signal ${signal}) before ready; output:\n${out}`));
    });
  });
}

function stopper(child: ChildProcess): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const force = setTimeout(() => child.kill("SIGKILL"), 5000);
      child.once("exit", () => {
        clearTimeout(force);
        resolve();
      });
      child.kill("SIGTERM");
    });
}

/** nats-server with JetStream; `port` 0 picks a free one (fixed ports let a test restart it in place). */
export interface NatsServerOptions extends ServerOptions {
  /** A nats-server configuration file (users, permissions, TLS); the command line still sets the listen
   * address, port and JetStream. @default none */
  configFile?: string;
}

export async function startNats(
  dataDir: string,
  port = 0,
  opts: NatsServerOptions = {},
): Promise<RunningServer> {
  mkdirSync(dataDir, { recursive: true });
  const p = port || (await freePort());
  const { child } = await spawnUntil(
    "nats-server",
    "nats-server",
    [
      ...(opts.configFile ? ["-c", opts.configFile] : []),
      "-a",
      "127.0.0.1",
      "-p",
      String(p),
      "-js",
      "-sd",
      dataDir,
    ],
    /Server is ready/,
    20000,
    opts.detached,
  );
  return { url: `nats://127.0.0.1:${p}`, port: p, process: child, stop: stopper(child) };
}

/** The Go garbage collector's target for FerretDB (FERRETDB_GOGC, else 1000). Its live heap is ~1 MB,
 * so at Go's default (100) it collected every ~4 MB allocated: ~185 times to insert, update and delete
 * 2,000 outbox rows. At 1000 its heap stays under ~120 MB and, in the webhooks bench, it used ~15 %
 * less CPU (12 interleaved runs: 1.59 against 1.87 CPU-seconds a burst on average). */
function ferretGogc(): string {
  return process.env.FERRETDB_GOGC || "1000";
}

/** FerretDB (SQLite backend) speaking the MongoDB wire protocol. */
export async function startMongoWire(
  dataDir: string,
  port = 0,
  db = "switchboard",
  opts: ServerOptions = {},
): Promise<RunningServer> {
  mkdirSync(dataDir, { recursive: true });
  const p = port || (await freePort());
  const { child } = await spawnUntil(
    "ferretdb",
    FERRETDB_BIN,
    // FERRETDB_SYNCHRONOUS=normal: SQLite syncs at checkpoints only, not at every commit.
    [
      "-listen",
      `127.0.0.1:${p}`,
      "-dir",
      dataDir,
      "-synchronous",
      process.env.FERRETDB_SYNCHRONOUS ?? "full",
    ],
    /Listening on TCP/,
    20000,
    opts.detached,
    { ...process.env, GOGC: ferretGogc() },
  );
  return { url: `mongodb://127.0.0.1:${p}/${db}`, port: p, process: child, stop: stopper(child) };
}
