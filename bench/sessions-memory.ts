// `npm run bench -- sessions-memory [--json] [--sessions 500] [--concurrency 16]`
//
// Memory per simulated session on one worker. This process is the worker: one broker running
// `session` (and `accounts`, whose footprint does not grow with sessions) against a real nats-server
// and FerretDB started here. Heap and RSS are measured after full GCs: once with no session, once
// with every session waiting for a scan (QR on screen), once with every session connected;
// per-session = delta / sessions.
// Bar: connected sessions cost ≤ 64 KB of heap each (the simulated engine is for load tests).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { ServiceBroker } from "moleculer";
import { brokerOptions } from "../moleculer.config.ts";
import AccountsService from "../services/accounts.service.ts";
import SessionService from "../services/session.service.ts";
import { loadConfig } from "../src/config.ts";
import { startMongoWire, startNats, type RunningServer } from "../src/dev/servers.ts";

const HEAP_PER_SESSION_BAR_KB = 64;
const log = (...a: unknown[]) => console.error("[bench sessions-memory]", ...a);

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

interface Sample {
  heapUsed: number;
  rss: number;
}

async function settle(): Promise<Sample> {
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 50));
  }
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, rss: m.rss };
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 300000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function inParallel<T>(items: T[], limit: number, task: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await task(items[next++]);
    }),
  );
}

const kb = (bytes: number) => Math.round((bytes / 1024) * 10) / 10;
const mb = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;

export async function run(args: { options?: Record<string, string | boolean> } | string[] = {}) {
  const options = Array.isArray(args) ? {} : (args.options ?? {});
  const sessions = Number(options.sessions ?? 500);
  const concurrency = Number(options.concurrency ?? 16);
  const dir = mkdtempSync(join(tmpdir(), "switchboard-bench-mem-"));
  const servers: RunningServer[] = [];
  let broker: ServiceBroker | null = null;
  try {
    const nats = await startNats(join(dir, "nats"));
    servers.push(nats);
    const mongo = await startMongoWire(join(dir, "mongo"), 0, "benchmem");
    servers.push(mongo);
    const cfg = {
      ...loadConfig(),
      nodeId: "bench-worker",
      namespace: `benchmem${process.pid}`,
      natsUrl: nats.url,
      mongoUrl: mongo.url,
      engine: "simulated",
      logLevel: "warn",
      startConcurrency: concurrency,
      // One worker holds every session of the bench.
      sessionCapacity: sessions + 10,
      quotas: { accounts: 0, webhooks: 0, sockets: 0, socketCallsPerMinute: 0 },
      // FerretDB on a shared machine is slow; a bench measures memory, not timeouts.
      requestTimeoutMs: 300000,
      // Long QR validity: no session times out while the others are being scanned.
      qr: { firstTtlMs: 600000, refreshMs: 600000, max: 6 },
    };
    broker = new ServiceBroker(brokerOptions(cfg));
    broker.createService(AccountsService);
    broker.createService(SessionService);
    await broker.start();
    await broker.waitForServices(["accounts", "session"], 10000);
    const local = async () =>
      (await broker!.call("session.local", {}, { nodeID: cfg.nodeId })) as { status: string }[];
    const count = async (status: string) => (await local()).filter((s) => s.status === status).length;

    // Warm every code path once (QR rendering, GridFS, validators), then drop that account.
    const warm = (await broker.call("accounts.create", { workspaceId: "warmup" })) as { id: string };
    await until("warm-up QR", async () => (await count("qr_scanning")) === 1);
    await broker.call("accounts.simulate", { workspaceId: "warmup", accountId: warm.id, action: "scan" });
    await broker.call("accounts.remove", { workspaceId: "warmup", accountId: warm.id });
    const base = await settle();
    log(`baseline heap ${mb(base.heapUsed)} MB, rss ${mb(base.rss)} MB; creating ${sessions} sessions`);

    const t0 = performance.now();
    const ids = Array.from({ length: sessions }, (_, i) => `ws${i % 50}`);
    const created: { id: string; workspaceId: string }[] = [];
    await inParallel(ids, concurrency, async (workspaceId) => {
      created.push(
        (await broker!.call("accounts.create", { workspaceId })) as { id: string; workspaceId: string },
      );
    });
    await until(`${sessions} QRs`, async () => (await count("qr_scanning")) === sessions);
    const scanningMs = performance.now() - t0;
    const scanning = await settle();
    log(`${sessions} scanning after ${Math.round(scanningMs)} ms: heap ${mb(scanning.heapUsed)} MB`);

    const t1 = performance.now();
    await inParallel(created, concurrency, (a) =>
      broker!.call("accounts.simulate", { workspaceId: a.workspaceId, accountId: a.id, action: "scan" }),
    );
    await until(`${sessions} connected`, async () => (await count("connected")) === sessions);
    const connectMs = performance.now() - t1;
    const connected = await settle();
    log(`${sessions} connected after ${Math.round(connectMs)} ms: heap ${mb(connected.heapUsed)} MB`);

    const heapPerSessionKB = kb((connected.heapUsed - base.heapUsed) / sessions);
    return {
      bench: "sessions-memory",
      sessions,
      engine: "simulated",
      baseline: { heapMB: mb(base.heapUsed), rssMB: mb(base.rss) },
      scanning: {
        heapMB: mb(scanning.heapUsed),
        rssMB: mb(scanning.rss),
        heapPerSessionKB: kb((scanning.heapUsed - base.heapUsed) / sessions),
        rssPerSessionKB: kb((scanning.rss - base.rss) / sessions),
        allScanningMs: Math.round(scanningMs),
      },
      connected: {
        heapMB: mb(connected.heapUsed),
        rssMB: mb(connected.rss),
        heapPerSessionKB,
        rssPerSessionKB: kb((connected.rss - base.rss) / sessions),
        allConnectedMs: Math.round(connectMs),
      },
      bar: { heapPerSessionKB: HEAP_PER_SESSION_BAR_KB },
      pass: heapPerSessionKB <= HEAP_PER_SESSION_BAR_KB,
    };
  } finally {
    await broker?.stop().catch(() => undefined);
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}
