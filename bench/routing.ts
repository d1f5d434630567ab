// Routing bench: `npm run bench -- routing [--json] [--duration 10] [--rounds 2] [--concurrency 64]
// [--workspaces 40] [--accounts 5]`.
// Requests/s and p50/p99 latency of GET /api/v1/accounts/:id/qr through the gateway → NATS → owning
// worker (simulated accounts in qr_scanning, QR TTLs of an hour), against a baseline built here of the
// old design (bench/support/legacy.ts): an HTTP proxy that reads the account from MongoDB and forwards
// to one of 4 plain HTTP instance servers chosen by workspaceId % 4. Same machine, same run, same
// concurrency, same accounts and QR payloads; rounds alternate (ours, baseline, ours, …) so background
// load hits both alike. Bars: our throughput ≥ 1.0 × the baseline's, our p99 ≤ 1.5 × the baseline's.
//
// Processes: nats-server, FerretDB, gateway (api + accounts), 2 workers (session); baseline: proxy,
// instances (the 4 servers in one process); the load generator is this process.
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { MongoClient } from "mongodb";
import { ROOT } from "../src/dev/servers.ts";
import type { BenchArgs, BenchResult } from "./index.ts";
import { numberOption } from "./support/options.ts";
import { BenchCluster } from "./support/cluster.ts";
import { LEGACY_COLLECTION } from "./support/legacy.ts";
import { cpuBetween, processTree, sampleCpu } from "./support/cpu.ts";
import { inParallel, summarize, type LatencySummary } from "./support/stats.ts";

interface Target {
  path: string;
  headers: Record<string, string>;
}

interface LoadResult {
  requests: number;
  errors: number;
  /** Non-200 answers by status (0: the connection failed). */
  errorsByStatus: Record<string, number>;
  seconds: number;
  latenciesMs: number[];
}

const log = (msg: string) => process.stderr.write(`[routing] ${msg}\n`);

function httpJson(
  port: number,
  method: string,
  path: string,
  key?: string,
  body?: unknown,
): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = {};
    if (key) headers.authorization = `Bearer ${key}`;
    if (payload) {
      headers["content-type"] = "application/json";
      headers["content-length"] = String(payload.length);
    }
    const req = request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        let json: unknown = text;
        try {
          json = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
    });
    req.on("error", reject);
    req.end(payload);
  });
}

async function until<T>(what: string, check: () => Promise<T | null | undefined | false>, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check().catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `concurrency` lanes, each sending one request after another to a random target, for `ms`. */
async function load(port: number, targets: Target[], ms: number, concurrency: number): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const latenciesMs: number[] = [];
  let errors = 0;
  const start = performance.now();
  const end = start + ms;
  const errorsByStatus: Record<string, number> = {};
  const one = (t: Target) =>
    new Promise<number>((resolve) => {
      const req = request({ host: "127.0.0.1", port, path: t.path, headers: t.headers, agent }, (res) => {
        res.on("data", () => undefined);
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.on("error", () => resolve(0));
      });
      req.on("error", () => resolve(0));
      req.end();
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t = targets[Math.floor(Math.random() * targets.length)];
        const t0 = performance.now();
        const status = await one(t);
        latenciesMs.push(performance.now() - t0);
        if (status !== 200) {
          errors++;
          errorsByStatus[status] = (errorsByStatus[status] ?? 0) + 1;
        }
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  agent.destroy();
  return { requests: latenciesMs.length, errors, errorsByStatus, seconds, latenciesMs };
}

function spawnLegacy(env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(
    join(ROOT, "node_modules", ".bin", "tsx"),
    [join(ROOT, "bench", "support", "legacy.ts")],
    {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, ...env },
    },
  );
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (b: Buffer) => {
      out += b.toString();
      if (out.includes("ready legacy-")) resolve(child);
    });
    child.once("exit", (code) => reject(new Error(`legacy ${env.LEGACY_ROLE} exited (${code}): ${out}`)));
  });
}

interface Side {
  rps: number;
  requests: number;
  errors: number;
  errorsByStatus: Record<string, number>;
  latencyMs: LatencySummary;
}

function combine(results: LoadResult[]): Side {
  const requests = results.reduce((a, r) => a + r.requests, 0);
  const seconds = results.reduce((a, r) => a + r.seconds, 0);
  return {
    rps: Math.round(requests / seconds),
    requests,
    errors: results.reduce((a, r) => a + r.errors, 0),
    errorsByStatus: results.reduce<Record<string, number>>((acc, r) => {
      for (const [k, v] of Object.entries(r.errorsByStatus)) acc[k] = (acc[k] ?? 0) + v;
      return acc;
    }, {}),
    latencyMs: summarize(results.flatMap((r) => r.latenciesMs)),
  };
}

type CpuTotals = Record<string, { cpuSeconds: number; cores: number }>;

function addCpu(into: CpuTotals, phase: CpuTotals): void {
  for (const [label, v] of Object.entries(phase)) {
    const t = (into[label] ??= { cpuSeconds: 0, cores: 0 });
    t.cpuSeconds += v.cpuSeconds;
    t.cores += v.cores;
  }
}

function perRequest(totals: CpuTotals, requests: number): Record<string, number> {
  return Object.fromEntries(
    Object.entries(totals)
      .filter(([, v]) => v.cpuSeconds > 0)
      .map(([label, v]) => [label, Math.round(((v.cpuSeconds * 1000) / Math.max(1, requests)) * 100) / 100]),
  );
}

function cores(totals: CpuTotals, rounds: number): Record<string, number> {
  return Object.fromEntries(
    Object.entries(totals)
      .filter(([, v]) => v.cpuSeconds > 0)
      .map(([label, v]) => [label, Math.round((v.cores / rounds) * 100) / 100]),
  );
}

export async function run(args: BenchArgs): Promise<BenchResult> {
  const num = (name: string, dflt: number) => numberOption(args, name, dflt);
  const durationMs = num("duration", 10) * 1000;
  const rounds = num("rounds", 2);
  const concurrency = num("concurrency", 64);
  const workspaceCount = num("workspaces", 40);
  const perWorkspace = num("accounts", 5);
  const adminKey = `bench-admin-${process.pid}-${"k".repeat(32)}`;

  const cluster = new BenchCluster({
    ADMIN_API_KEY: adminKey,
    ENGINE: "simulated",
    QR_FIRST_TTL_MS: "3600000",
    QR_REFRESH_MS: "3600000",
    RATE_LIMIT_PER_MINUTE: "0",
    SESSION_CAPACITY: "10000",
    START_CONCURRENCY: "16",
  });
  const legacy: ChildProcess[] = [];
  try {
    log("starting nats-server, FerretDB, gateway and 2 workers");
    await cluster.startServers();
    const gwPort = await cluster.freePort();
    // --profile DIR: V8 CPU profiles of the gateway and the workers (written when they stop).
    const profile: Record<string, string> =
      typeof args.options.profile === "string"
        ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${args.options.profile}` }
        : {};
    await cluster.startNode("gw", ["api", "accounts"], { PORT: String(gwPort), ...profile });
    await Promise.all([
      cluster.startNode("w1", ["session"], profile),
      cluster.startNode("w2", ["session"], profile),
    ]);
    await until(
      "the gateway to be ready",
      async () => (await httpJson(gwPort, "GET", "/health/ready")).status === 200,
    );

    log(`creating ${workspaceCount} workspaces × ${perWorkspace} simulated accounts`);
    const workspaces = Array.from({ length: workspaceCount }, (_, i) => String(i + 1));
    const keys = new Map<string, string>();
    const accounts: { id: string; workspaceId: string }[] = [];
    for (const ws of workspaces) {
      const k = await httpJson(gwPort, "POST", `/api/v1/workspaces/${ws}/keys`, adminKey);
      if (k.status !== 201) throw new Error(`key for ${ws}: ${k.status} ${JSON.stringify(k.json)}`);
      keys.set(ws, k.json.key);
      for (let i = 0; i < perWorkspace; i++) {
        const a = await httpJson(gwPort, "POST", "/api/v1/accounts", k.json.key, {
          name: `bench ${ws}.${i}`,
        });
        if (a.status !== 201) throw new Error(`account in ${ws}: ${a.status} ${JSON.stringify(a.json)}`);
        accounts.push({ id: a.json.id, workspaceId: ws });
      }
    }
    for (const ws of workspaces) {
      await until(`workspace ${ws}'s accounts to show a QR`, async () => {
        const list = await httpJson(gwPort, "GET", "/api/v1/accounts", keys.get(ws));
        return (
          list.status === 200 && list.json.items.every((a: { status: string }) => a.status === "qr_scanning")
        );
      });
    }
    const qrs = await inParallel(accounts, 8, async (a) => {
      const r = await httpJson(gwPort, "GET", `/api/v1/accounts/${a.id}/qr`, keys.get(a.workspaceId));
      if (r.status !== 200) throw new Error(`QR of ${a.id}: ${r.status} ${JSON.stringify(r.json)}`);
      return { ...a, qr: r.json };
    });

    log("starting the baseline: MongoDB-reading proxy + 4 instance servers (workspaceId % 4)");
    const mongo = await MongoClient.connect(cluster.mongoUrl);
    try {
      // The same account documents.
      const docs = await mongo.db().collection<{ _id: string }>("accounts").find({}).toArray();
      await mongo.db().collection<{ _id: string }>(LEGACY_COLLECTION).insertMany(docs);
    } finally {
      await mongo.close();
    }
    const dataFile = join(cluster.dir, "legacy-accounts.json");
    writeFileSync(dataFile, JSON.stringify(qrs));
    const instancePorts = await Promise.all([0, 1, 2, 3].map(() => cluster.freePort()));
    const proxyPort = await cluster.freePort();
    legacy.push(
      await spawnLegacy({
        LEGACY_ROLE: "instances",
        LEGACY_PORTS: instancePorts.join(","),
        LEGACY_DATA: dataFile,
      }),
    );
    legacy.push(
      await spawnLegacy({
        LEGACY_ROLE: "proxy",
        LEGACY_PORT: String(proxyPort),
        LEGACY_PORTS: instancePorts.join(","),
        MONGO_URL: cluster.mongoUrl,
      }),
    );

    const ours: Target[] = accounts.map((a) => ({
      path: `/api/v1/accounts/${a.id}/qr`,
      headers: { authorization: `Bearer ${keys.get(a.workspaceId)}` },
    }));
    const baseline: Target[] = accounts.map((a) => ({ path: `/accounts/${a.id}/qr`, headers: {} }));

    log("warming up both");
    await load(gwPort, ours, 2000, concurrency);
    await load(proxyPort, baseline, 2000, concurrency);

    const oursRuns: LoadResult[] = [];
    const baseRuns: LoadResult[] = [];
    const procs = processTree();
    // Background work with no requests at all (leases, reconcilers, other engineers' load on the host).
    const idleStart = sampleCpu(procs);
    await new Promise((r) => setTimeout(r, 3000));
    const idle = cpuBetween(idleStart, sampleCpu(procs));
    const cpu = { ours: {} as CpuTotals, baseline: {} as CpuTotals };
    const measured = async (side: "ours" | "baseline", port: number, targets: Target[]) => {
      const before = sampleCpu(procs);
      const res = await load(port, targets, durationMs, concurrency);
      addCpu(cpu[side], cpuBetween(before, sampleCpu(procs)));
      return res;
    };
    for (let r = 0; r < rounds; r++) {
      const o = await measured("ours", gwPort, ours);
      oursRuns.push(o);
      log(`round ${r + 1} ours: ${Math.round(o.requests / o.seconds)} req/s, ${o.errors} errors`);
      const b = await measured("baseline", proxyPort, baseline);
      baseRuns.push(b);
      log(`round ${r + 1} baseline: ${Math.round(b.requests / b.seconds)} req/s, ${b.errors} errors`);
    }
    const o = combine(oursRuns);
    const b = combine(baseRuns);
    const throughputRatio = Math.round((o.rps / b.rps) * 100) / 100;
    const p99Ratio = Math.round((o.latencyMs.p99 / b.latencyMs.p99) * 100) / 100;
    const bars = { throughputRatioMin: 1.0, p99RatioMax: 1.5 };
    return {
      bench: "routing",
      request: "GET /api/v1/accounts/:id/qr",
      setup: {
        concurrency,
        durationSeconds: durationMs / 1000,
        rounds,
        workspaces: workspaceCount,
        accounts: accounts.length,
        ours: "gateway (api+accounts) → NATS → owning worker (session), 2 workers",
        baseline: "proxy (MongoDB findOne) → 4 HTTP instances by workspaceId % 4",
        host: { cpus: cpus().length, loadAverage1m: Math.round(loadavg()[0] * 10) / 10 },
      },
      ours: o,
      baseline: b,
      // CPU milliseconds per request by process (summed over the rounds): where the time goes.
      cpuMsPerRequest: {
        ours: perRequest(cpu.ours, o.requests),
        baseline: perRequest(cpu.baseline, b.requests),
      },
      cpuCoresUsed: {
        idle: Object.fromEntries(Object.entries(idle).map(([k, v]) => [k, v.cores])),
        ours: cores(cpu.ours, rounds),
        baseline: cores(cpu.baseline, rounds),
      },
      ratio: { throughput: throughputRatio, p99: p99Ratio },
      bars,
      pass: o.errors === 0 && throughputRatio >= bars.throughputRatioMin && p99Ratio <= bars.p99RatioMax,
    };
  } finally {
    for (const child of legacy) child.kill("SIGTERM");
    await cluster.stop();
  }
}
