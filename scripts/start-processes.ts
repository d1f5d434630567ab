// The processes of `npm start` (scripts/start.ts): its children with their output kept and prefixed,
// the cluster of them with its order of stopping, and the sweep of anything left of this run.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { createInterface } from "node:readline";
import { ROOT, type RunningServer } from "../src/dev/servers.ts";
import { NODE_STARTED_MARK } from "../src/node.ts";

/** From spawning the nodes to the ready line. */
export const READY_TIMEOUT_MS = 120_000;
/** A node gets this long to stop gracefully (workers drain their sessions) before SIGKILL. */
export const NODE_STOP_TIMEOUT_MS = 20_000;
export const PROGRESS_EVERY_MS = 5_000;
export const TAIL_LINES = 40;

const t0 = Date.now();
export const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
export const say = (msg: string) => console.log(`[start] ${msg}`);
export const warn = (msg: string) => console.error(`[start] ${msg}`);

/** Every process started here (and their descendants) inherits this marker; the final sweep uses it. */
export const RUN_MARK = `SWITCHBOARD_RUN=${randomBytes(8).toString("hex")}`;

export class StartError extends Error {}

/** A path relative to the project when it lies inside it. */
export function shortPath(path: string): string {
  const rel = relative(ROOT, path);
  return rel && !rel.startsWith("..") ? rel : path;
}

export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0)
    throw new StartError(`${name} must be a non-negative integer, got "${raw}"`);
  return n;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A child process whose output is kept (last lines) and shown with a prefix. */
export class Child {
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
export class Cluster {
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
