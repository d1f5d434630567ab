// `npm run bench -- first-qr [--json] [--workers 3] [--inflight 50] [--warmup-waves 4] [--warm-waves 3]
//   [--start-concurrency N]`
//
// Time to first QR as a user sees it: from `POST /api/v1/accounts` to the account's first `account.qr`
// on a Socket.IO client of its workspace. A real cluster at default settings (nats-server, FerretDB, a
// gateway process api+io+accounts and N session workers, simulated engine), sockets in this process.
// Each wave is `inflight` creates at once, each in a new workspace with its socket already open.
// - cold: the first wave, seconds after the processes started (nothing compiled, no connection warm);
// - warm: `warm-waves` waves after `warmup-waves` others, pooled.
// Breakdown per wave: the REST answer, the QR on the bus (an observer broker in this process) and on the
// socket. Bars: p99 ≤ 250 ms cold, ≤ 150 ms warm.
import { randomBytes } from "node:crypto";
import { Agent, request } from "node:http";
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { ServiceBroker } from "moleculer";
import { io as connectSocket, type Socket as ClientSocket } from "socket.io-client";
import type { BenchArgs, BenchResult } from "./index.ts";
import { BenchCluster } from "./support/cluster.ts";
import { cpuBetween, processTree, sampleCpu } from "./support/cpu.ts";
import { numberOption } from "./support/options.ts";
import { summarize } from "./support/stats.ts";

const COLD_P99_BAR_MS = 250;
const WARM_P99_BAR_MS = 150;

const now = () => performance.timeOrigin + performance.now();
const log = (...a: unknown[]) => console.error("[bench first-qr]", ...a);

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Timing {
  t0: number;
  responded?: number;
  onBus?: number;
  onSocket?: number;
}

export async function run(args: BenchArgs): Promise<BenchResult> {
  const workers = numberOption(args, "workers", 3);
  const inflight = numberOption(args, "inflight", 50);
  const warmupWaves = numberOption(args, "warmup-waves", 4);
  const warmWaves = numberOption(args, "warm-waves", 3);
  const adminKey = randomBytes(16).toString("hex");
  const loadAtStart = loadavg().map((x) => Math.round(x * 100) / 100);
  const cluster = new BenchCluster({
    ENGINE: "simulated",
    ADMIN_API_KEY: adminKey,
    RATE_LIMIT_PER_MINUTE: "10000000",
    // Every wave's sessions stay up (scanning): room for all of them (400 at the defaults).
    SESSION_CAPACITY: "1000",
    ...(args.options["start-concurrency"]
      ? { START_CONCURRENCY: String(args.options["start-concurrency"]) }
      : {}),
  });
  const sockets: ClientSocket[] = [];
  const agents: Agent[] = [];
  let observer: ServiceBroker | undefined;
  try {
    await cluster.startServers();
    const port = await cluster.freePort();
    log(`starting gateway + ${workers} workers`);
    await Promise.all([
      cluster.startNode("gateway", ["api", "io", "accounts"], { PORT: String(port) }),
      ...Array.from({ length: workers }, (_, i) => cluster.startNode(`worker-${i + 1}`, ["session"])),
    ]);
    const base = `http://127.0.0.1:${port}`;
    const timings = new Map<string, Timing>();
    const busQrAt = new Map<string, number>();
    const socketQrAt = new Map<string, number>();
    observer = cluster.broker("bench-observer");
    observer.createService({
      name: "firstqrobserver",
      events: {
        "account.qr"(ctx: any) {
          // The QR may arrive before the POST's answer names the account: kept by id.
          if (!busQrAt.has(ctx.params.accountId)) busQrAt.set(ctx.params.accountId, now());
        },
      },
    });
    await observer.start();
    await observer.waitForServices(["api", "accounts", "session"], 30000);
    // The gateway must see every worker's `session` (as its readiness check does) and every node must
    // know the observer, before the first create.
    const o = observer;
    const sessionEndpointsOfGateway = async () => {
      const services = (await o.call(
        "$node.services",
        { onlyAvailable: true, withEndpoints: true },
        { nodeID: "gateway" },
      )) as { name: string; endpoints?: unknown[]; nodes?: unknown[] }[];
      const session = services.find((svc) => svc.name === "session");
      return session?.endpoints?.length ?? session?.nodes?.length ?? 0;
    };
    await until("the gateway", () => o.registry.nodes.get("gateway")?.available === true, 30000);
    await until("the gateway", () => true, 0);
    const deadline = Date.now() + 30000;
    for (let seen = 0; seen < workers; seen = await sessionEndpointsOfGateway().catch(() => 0)) {
      if (Date.now() > deadline) throw new Error(`the gateway sees ${seen} of ${workers} session workers`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await cluster.knownEverywhere(o, "firstqrobserver");
    // node:http with kept-alive connections: the load generator shares the two cores with the cluster,
    // and fetch costs it several times the CPU per request.
    const agent = new Agent({ keepAlive: true, maxSockets: inflight });
    agents.push(agent);
    const rest = (path: string, key: string, body: unknown): Promise<any> =>
      new Promise((resolve, reject) => {
        const payload = JSON.stringify(body);
        const req = request(
          base + path,
          {
            method: "POST",
            agent,
            headers: {
              authorization: `Bearer ${key}`,
              "content-type": "application/json",
              "content-length": Buffer.byteLength(payload),
            },
          },
          (res) => {
            let text = "";
            res.setEncoding("utf8");
            res.on("data", (c: string) => (text += c));
            res.on("end", () => {
              if (res.statusCode! >= 300) reject(new Error(`POST ${path} → ${res.statusCode} ${text}`));
              else resolve(JSON.parse(text));
            });
          },
        );
        req.on("error", reject);
        req.end(payload);
      });

    /** Keys and sockets for `inflight` new workspaces (set up before the wave, as a user's dashboard). */
    const prepare = async (wave: number) => {
      const out: { ws: string; key: string }[] = [];
      for (let i = 0; i < inflight; i++) {
        const ws = `fq${wave}x${i}`;
        out.push({ ws, key: (await rest(`/api/v1/workspaces/${ws}/keys`, adminKey, {})).key });
      }
      let ready = 0;
      for (const { key } of out) {
        const socket = connectSocket(base, { auth: { token: key }, transports: ["websocket"] });
        socket.once("accounts.snapshot", () => ready++);
        socket.on("account.qr", (p: { accountId: string }) => {
          if (!socketQrAt.has(p.accountId)) socketQrAt.set(p.accountId, now());
        });
        sockets.push(socket);
      }
      await until("every socket's snapshot", () => ready === out.length, 30000);
      return out;
    };

    const runWave = async (wave: number) => {
      const prepared = await prepare(wave);
      const procs = processTree();
      const cpuStart = sampleCpu(procs);
      const ids: string[] = [];
      await Promise.all(
        prepared.map(async ({ key }, i) => {
          const t: Timing = { t0: now() };
          const account = await rest("/api/v1/accounts", key, { name: `wave ${wave} #${i}` });
          t.responded = now();
          timings.set(account.id, t);
          ids.push(account.id);
        }),
      );
      await until(`QRs of wave ${wave}`, () => ids.every((id) => socketQrAt.has(id)), 30000);
      for (const id of ids)
        Object.assign(timings.get(id)!, { onBus: busQrAt.get(id), onSocket: socketQrAt.get(id) });
      const cpu = cpuBetween(cpuStart, sampleCpu(procs));
      const parts = (pick: (t: Timing) => number | undefined) =>
        summarize(ids.map((id) => timings.get(id)!).map((t) => pick(t)! - t.t0));
      return {
        ids,
        firstQr: parts((t) => t.onSocket),
        breakdown: { restResponse: parts((t) => t.responded), onBus: parts((t) => t.onBus) },
        cpuSeconds: Math.round(Object.values(cpu).reduce((a, v) => a + v.cpuSeconds, 0) * 100) / 100,
        /** CPU seconds per process (the bench's own, sockets and HTTP client, included). */
        cpu: Object.fromEntries(Object.entries(cpu).map(([label, v]) => [label, v.cpuSeconds])),
        loadavg1: Math.round(loadavg()[0] * 100) / 100,
      };
    };

    log(`cold wave: ${inflight} creates at once`);
    const cold = await runWave(0);
    for (let w = 1; w <= warmupWaves; w++) await runWave(w);
    const warm: Awaited<ReturnType<typeof runWave>>[] = [];
    for (let w = 0; w < warmWaves; w++) warm.push(await runWave(warmupWaves + 1 + w));
    const warmAll = summarize(
      warm.flatMap((r) => r.ids.map((id) => timings.get(id)!)).map((t) => t.onSocket! - t.t0),
    );
    const { ids: _cold, ...coldOut } = cold;
    const result = {
      bench: "first-qr",
      setup: { workers, inflight, warmupWaves, warmWaves, loadAtStart },
      coldMs: coldOut.firstQr,
      warmMs: warmAll,
      cold: coldOut,
      warmWaves: warm.map(({ ids: _ids, ...rest }) => rest),
      bars: {
        [`coldP99<=${COLD_P99_BAR_MS}`]: cold.firstQr.p99 <= COLD_P99_BAR_MS,
        [`warmP99<=${WARM_P99_BAR_MS}`]: warmAll.p99 <= WARM_P99_BAR_MS,
      },
    };
    return { ...result, pass: Object.values(result.bars).every(Boolean) };
  } finally {
    for (const s of sockets) s.close();
    for (const a of agents) a.destroy();
    await observer?.stop().catch(() => undefined);
    await cluster.stop();
  }
}
