// Launching and killing one session's Chromium. We spawn Chromium ourselves (whatsapp-web.js then
// connects over its DevTools pipe, devtools-pipe.ts) so that we hold its pid and process group from the first moment:
// stop() can then always kill everything, even when whatsapp-web.js's destroy() throws or hangs, and
// a crash is seen as the process's own exit.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { PipeTransport } from "./devtools-pipe.ts";
import { logSandboxDecision, runsSingleProcess, sessionFlags, type ProcessModel } from "./flags.ts";

export interface LaunchOptions {
  /** Chromium binary. */
  executablePath: string;
  /** The session's own profile directory (`--user-data-dir`); also marks every process of the session. */
  userDataDir: string;
  /** Extra flags (e.g. `--host-resolver-rules=…` for a local stand-in of WhatsApp Web). */
  extraArgs?: string[];
  /** The process model (CHROMIUM_SINGLE_PROCESS, see ProcessModel). @default "auto" */
  singleProcess?: ProcessModel;
  /** How long to wait for DevTools to answer on the pipe. @default 30000 */
  timeoutMs?: number;
  /** Aborting kills the browser and rejects the launch (a stop() during a start). */
  signal?: AbortSignal;
  /** How long processes left of an earlier run may outlive SIGKILL before launchOnProfile throws.
   * @default 5000 */
  killTimeoutMs?: number;
  /** Where the sandbox decision is logged (once per process). @default console */
  logger?: { info(...a: unknown[]): void; warn(...a: unknown[]): void };
}

export interface LaunchedChromium {
  /** Leader of the browser's process group (the supervisor, or Chromium itself without one). */
  pid: number;
  /** Chromium's main process. */
  browserPid: number;
  /** DevTools, over the pipe: no port is open. */
  transport: PipeTransport;
  child: ChildProcess;
  /** Resolves with the exit code/signal when the browser process ends. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export class ChromiumLaunchError extends Error {}

/** Process groups of the browsers this process launched and that still run. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;

/**
 * Chromium runs in a group of its own, so it would outlive a Node process that dies without stopping
 * its engines (an uncaught exception, process.exit). On exit, synchronously kill every group still
 * running. (A SIGKILLed Node cannot do this: its browsers' supervisors do, see `supervisedCommand`.)
 */
function trackGroup(pgid: number, exited: Promise<unknown>): void {
  liveGroups.add(pgid);
  void exited.then(() => liveGroups.delete(pgid));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const group of liveGroups) killProcessGroup(group);
  });
}

/** util-linux's setpriv, which sets a parent-death signal before it execs its command. */
const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p)) ?? null;

/**
 * The command that runs Chromium so that it dies with this Node process, even a SIGKILLed one: a shell
 * that leads the browser's process group gets SIGTERM when its parent (this process) dies (setpriv's
 * parent-death signal) and then SIGKILLs the whole group, Chromium's zygote and renderers included.
 * The DevTools pipe (fds 3 and 4) passes through to Chromium; the shell closes its own copies, so the
 * pipe ends exactly when the browser does. Without setpriv, Chromium runs directly (and only a
 * graceful exit of this process kills it).
 */
export function supervisedCommand(
  executable: string,
  args: string[],
  profileDir: string,
): { file: string; args: string[] } {
  if (!SETPRIV) return { file: executable, args };
  // Chromium's crash handler leaves the group; it is found by its database inside the profile ($0).
  const script =
    'trap \'pkill -KILL -f -- "$0/.config"; kill -KILL 0\' TERM; "$@" & pid=$!; exec 3>&- 4>&-; echo "chromium pid $pid" >&2; wait $pid';
  const shell = ["/bin/sh", "-c", script, profileDir, executable, ...args];
  return { file: SETPRIV, args: ["--pdeathsig", "TERM", "--", ...shell] };
}

/**
 * Spawns Chromium in a process group of its own (`detached`), under the parent-death supervisor of
 * `supervisedCommand`, with its crash handler's database inside the profile (XDG_CONFIG_HOME) so that
 * every process it starts names the profile on its command line. DevTools is the pipe on fds 3/4
 * (--remote-debugging-pipe); the launch ends once Chromium has answered a command on it.
 */
export function launchChromium(opts: LaunchOptions): Promise<LaunchedChromium> {
  logSandboxDecision(opts.logger, opts.singleProcess);
  const singleProcess = runsSingleProcess(opts.singleProcess);
  const command = supervisedCommand(
    opts.executablePath,
    [
      ...sessionFlags({ singleProcess }),
      ...(opts.extraArgs ?? []),
      `--user-data-dir=${opts.userDataDir}`,
      "about:blank",
    ],
    opts.userDataDir,
  );
  const child = spawn(command.file, command.args, {
    detached: true,
    // fd 3: DevTools commands to Chromium, fd 4: its answers and events.
    stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"],
    env: { ...process.env, XDG_CONFIG_HOME: join(opts.userDataDir, ".config") },
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
    child.once("error", () => resolve({ code: null, signal: null }));
  });
  if (child.pid) trackGroup(child.pid, exited);
  const transport = new PipeTransport(child.stdio[3] as Writable, child.stdio[4] as Readable);
  return new Promise((resolve, reject) => {
    let stderr = "";
    let browserPid: number | undefined;
    let answered = false;
    const timer = setTimeout(
      () =>
        fail(new ChromiumLaunchError(`Chromium did not answer on DevTools in ${opts.timeoutMs ?? 30000} ms`)),
      opts.timeoutMs ?? 30000,
    );
    const ready = () => {
      // Both the supervisor's "chromium pid" line and DevTools' answer (either may come first).
      if (!answered || (SETPRIV && browserPid === undefined)) return;
      done();
      child.stderr?.resume(); // keep draining so Chromium never blocks on a full pipe
      resolve({ pid: child.pid!, browserPid: browserPid ?? child.pid!, transport, child, exited });
    };
    const onData = (chunk: Buffer) => {
      stderr += chunk.toString();
      browserPid ??= Number(/chromium pid (\d+)/.exec(stderr)?.[1]) || undefined;
      if (stderr.length > 64_000) stderr = stderr.slice(-16_000);
      ready();
    };
    const onError = (err: Error) => fail(new ChromiumLaunchError(`Chromium could not start: ${err.message}`));
    const onExit = (code: number | null, signal: string | null) =>
      fail(
        new ChromiumLaunchError(
          `Chromium exited during launch (code ${code}, signal ${signal}): ${lastLines(stderr)}`,
        ),
      );
    const onAbort = () => fail(new ChromiumLaunchError("Chromium launch aborted"));
    let finished = false;
    const done = () => {
      finished = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      child.stderr?.off("data", onData);
      child.off("error", onError);
      child.off("exit", onExit);
    };
    const fail = (err: Error) => {
      if (finished) return;
      done();
      transport.close();
      if (child.pid) killProcessGroup(child.pid);
      reject(err);
    };
    child.stderr?.on("data", onData);
    child.once("error", onError);
    child.once("exit", onExit);
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener("abort", onAbort);
    // Puppeteer numbers its own commands from 1 once it owns the pipe; this answer is consumed first.
    transport.request(0, "Browser.getVersion").then(
      () => {
        answered = true;
        ready();
      },
      (err: Error) => fail(new ChromiumLaunchError(`Chromium's DevTools pipe failed: ${err.message}`)),
    );
  });
}

function lastLines(text: string, n = 3): string {
  return text.trim().split("\n").slice(-n).join(" | ");
}

export function killProcessGroup(pgid: number): void {
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    // the group is already gone
  }
}

interface ProcInfo {
  pid: number;
  ppid: number;
  pgrp: number;
  state: string;
}

function readStat(pid: number): ProcInfo | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) state ppid …" — comm may contain spaces and parentheses.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { pid, state: rest[0], ppid: Number(rest[1]), pgrp: Number(rest[2]) };
  } catch {
    return null;
  }
}

function allPids(): number[] {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
  } catch {
    return "";
  }
}

/** Live (non-zombie) processes whose command line names `marker` (a session's profile directory). */
export function processesMentioning(marker: string): number[] {
  return allPids().filter((pid) => {
    if (pid === process.pid) return false;
    const stat = readStat(pid);
    if (stat === null || stat.state === "Z") return false;
    // The marker as a whole path: "/p/s1" must not match the processes of "/p/s10".
    const cmd = `${cmdline(pid)} `;
    return cmd.includes(`${marker} `) || cmd.includes(`${marker}/`);
  });
}

/** The process group of `pid` (a session's browser leads its own group), or null once it is gone. */
export function processGroupOf(pid: number): number | null {
  return readStat(pid)?.pgrp ?? null;
}

/** Live (non-zombie) members of process group `pgid`. */
export function processGroupMembers(pgid: number): number[] {
  return allPids().filter((pid) => {
    const stat = readStat(pid);
    return stat !== null && stat.state !== "Z" && stat.pgrp === pgid;
  });
}

/** Live descendants of `root` (children, grandchildren, …), found through /proc. */
export function descendantsOf(root: number): number[] {
  const byParent = new Map<number, number[]>();
  for (const pid of allPids()) {
    const stat = readStat(pid);
    if (!stat || stat.state === "Z") continue;
    const list = byParent.get(stat.ppid) ?? [];
    list.push(pid);
    byParent.set(stat.ppid, list);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length) {
    for (const child of byParent.get(queue.shift()!) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

/**
 * Kills every process of a session: the process group of the browser, its descendants (collected
 * before anything dies, since orphans are re-parented), and as a last resort every process whose
 * command line names the profile directory (Chromium's crash handler daemonizes out of the group).
 * Resolves once none is alive, or throws after `timeoutMs`.
 */
export async function killSessionProcesses(
  userDataDir: string,
  browserPid?: number,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const victims = new Set<number>(processesMentioning(userDataDir));
    if (browserPid) {
      for (const pid of processGroupMembers(browserPid)) victims.add(pid);
      const stat = readStat(browserPid);
      if (stat && stat.state !== "Z") victims.add(browserPid);
      for (const pid of descendantsOf(browserPid)) victims.add(pid);
    }
    if (victims.size === 0) return;
    if (browserPid) killProcessGroup(browserPid);
    for (const pid of victims) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
    if (Date.now() > deadline) {
      throw new Error(
        `processes of ${userDataDir} still alive after ${timeoutMs} ms: ${[...victims].join(", ")}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Chromium's profile lock files; a stale SingletonLock makes the next launch on this profile refuse. */
export function removeSingletonFiles(userDataDir: string): void {
  for (const name of ["SingletonLock", "SingletonSocket", "SingletonCookie", "DevToolsActivePort"]) {
    rmSync(join(userDataDir, name), { force: true });
  }
}

/**
 * Resident memory of processes, from /proc/<pid>/smaps_rollup: RSS summed (counts pages shared between
 * the processes once per process), PSS (shared pages split among all their users, on the machine),
 * USS (pages private to these processes).
 */
export function memoryOf(pids: number[]): { rssKb: number; pssKb: number; ussKb: number; processes: number } {
  let rssKb = 0;
  let pssKb = 0;
  let ussKb = 0;
  let processes = 0;
  for (const pid of pids) {
    try {
      const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
      rssKb += Number(/^Rss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
      pssKb += Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
      ussKb += Number(/^Private_Clean:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
      ussKb += Number(/^Private_Dirty:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
      processes++;
    } catch {
      // exited meanwhile
    }
  }
  return { rssKb, pssKb, ussKb, processes };
}

/**
 * Launches the session's Chromium on its profile: first kills what a stale lock or a crashed node left
 * of it; a first start (`restore` given) rebuilds the profile from the saved auth state, a restart
 * keeps the local one (the newest state). Null when `opts.signal` aborted meanwhile. `restore` gets
 * the signal: an abort must end it even while its download hangs (a stop waits for the launch).
 */
export async function launchOnProfile(
  userDataDir: string,
  restore: ((signal?: AbortSignal) => Promise<unknown>) | null,
  opts: LaunchOptions,
): Promise<LaunchedChromium | null> {
  await killSessionProcesses(userDataDir, undefined, opts.killTimeoutMs);
  if (opts.signal?.aborted) return null;
  if (restore) {
    await rm(userDataDir, { recursive: true, force: true });
    await restore(opts.signal);
  } else removeSingletonFiles(userDataDir);
  if (opts.signal?.aborted) return null;
  return launchChromium(opts);
}
