// Benchmarks: `npm run bench -- <name> [--json] [--option value ...]`. Each bench module exports
// `run(args: BenchArgs): Promise<BenchResult>`; the result is printed as one JSON object with --json,
// readably otherwise, and appended to bench/results/<name>.jsonl with the commit, date and load
// average, so a regression shows in the history. A result with `pass: false` (a bar missed) exits
// with status 1. `npm run bench -- all` runs every bench in turn, each in a process of its own, each
// once the machine is quiet again (`startedOn` in its output says how busy it was, and how long it
// waited).
// Owners add their bench by one line in BENCHES.
import { execFileSync, spawnSync } from "node:child_process";
import { appendFileSync, mkdirSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { waitForQuiet, type Quiet } from "./support/quiet.ts";

export interface BenchArgs {
  json: boolean;
  /** `--name value` pairs (`--flag` alone gives true). */
  options: Record<string, string | boolean>;
  positional: string[];
}

export type BenchResult = Record<string, unknown>;

const BENCHES: Record<string, () => Promise<{ run(args: BenchArgs): Promise<BenchResult> }>> = {
  placement: () => import("./placement.ts"),
  failover: () => import("./failover.ts"),
  sends: () => import("./sends.ts"),
  "failover-webjs": () => import("./failover-webjs.ts"),
  "sessions-memory": () => import("./sessions-memory.ts"),
  events: () => import("./events.ts"),
  routing: () => import("./routing.ts"),
  webhooks: () => import("./webhooks.ts"),
  "first-qr": () => import("./first-qr.ts"),
  density: () => import("./density.ts"),
};

export function parseArgs(argv: string[]): BenchArgs {
  const args: BenchArgs = { json: false, options: {}, positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") continue;
    if (a === "--json") args.json = true;
    else if (a.startsWith("--") && a.includes("=")) {
      // `--name=value`: the way to give a value that itself starts with `--` (Chromium flags).
      const eq = a.indexOf("=");
      args.options[a.slice(2, eq)] = a.slice(eq + 1);
    } else if (a.startsWith("--")) {
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith("--")) {
        args.options[a.slice(2)] = next;
        i++;
      } else args.options[a.slice(2)] = true;
    } else args.positional.push(a);
  }
  return args;
}

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));

function commitOf(): string {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: BENCH_DIR, encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
}

/** Appends one run to bench/results/<name>.jsonl. */
export function recordResult(name: string, result: BenchResult, dir = join(BENCH_DIR, "results")): void {
  mkdirSync(dir, { recursive: true });
  const line = {
    bench: name,
    commit: commitOf(),
    date: new Date().toISOString(),
    loadavg: loadavg(),
    result,
  };
  appendFileSync(join(dir, `${name}.jsonl`), `${JSON.stringify(line)}\n`);
}

/** Every bench in turn, each in a child process (a bench owns its process: clusters, timers, exit). */
async function runAll(rest: string[]): Promise<BenchResult> {
  const results: Record<string, unknown> = {};
  const startedOn: Record<string, Quiet> = {};
  let pass = true;
  for (const name of Object.keys(BENCHES)) {
    startedOn[name] = await waitForQuiet((line) => console.error(`[bench all] ${line}`));
    console.error(`[bench all] ${name} …`);
    const started = Date.now();
    const child = spawnSync(
      process.execPath,
      [...process.execArgv, fileURLToPath(import.meta.url), name, ...rest, "--json"],
      {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    const last = child.stdout.trim().split("\n").at(-1) ?? "";
    let result: unknown;
    try {
      result = JSON.parse(last);
    } catch {
      result = { error: `exited with status ${child.status} and no result` };
    }
    if (child.status !== 0) pass = false;
    results[name] = result;
    console.error(
      `[bench all] ${name} done in ${((Date.now() - started) / 1000).toFixed(0)} s (status ${child.status})`,
    );
  }
  return { pass, results, startedOn };
}

async function main(): Promise<void> {
  const [name, ...rest] = process.argv.slice(2).filter((a) => a !== "--");
  const args = parseArgs(rest);
  if (name === "all") {
    const result = await runAll(rest.filter((a) => a !== "--json"));
    console.log(args.json ? JSON.stringify(result) : JSON.stringify(result, null, 2));
    process.exit(result.pass === false ? 1 : 0);
  }
  const load = name ? BENCHES[name] : undefined;
  if (!load) {
    console.error(`usage: npm run bench -- <${Object.keys(BENCHES).join("|")}|all> [--json]`);
    process.exit(2);
  }
  const result = await (await load()).run(args);
  recordResult(name, result);
  console.log(args.json ? JSON.stringify(result) : JSON.stringify(result, null, 2));
  process.exit(result.pass === false ? 1 : 0);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
