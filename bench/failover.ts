// `npm run bench -- failover [--json] [--workers 3] [--sessions 100] [--lease-ttl MS] [--lease-renew MS]
//   [--reconcile MS] [--heartbeat-interval MS] [--heartbeat-timeout MS] [--start-concurrency N]`
//
// Without timing options the workers run the defaults of src/config.ts: the figure is what a
// deployment gets, not what tuned timings allow.
// A real cluster: nats-server (JetStream) and FerretDB, N worker processes (`node scripts/node.ts`,
// simulated engine), and an observer broker here (accounts service + event recorder). It connects
// `sessions` accounts (4 per workspace, workspaces placed by HRW), SIGKILLs the worker hosting the most,
// and measures, over the sessions that had to move: seconds from the kill until each is `connected`
// on a survivor (first account.status "connected" event from another node), p50 and max; sessions
// seen on two nodes at once (every node's session.local polled every 100 ms); QRs asked (must be 0).
// Bar: max ≤ 5 s, 0 duplicates.
import type { ServiceBroker } from "moleculer";
import { ProcessCluster } from "../test/support/process-cluster.ts";
import {
  connectedAccounts,
  localOf,
  Sampler,
  waitAllConnected,
  type Recorded,
} from "../test/integration/placement/failover-support.ts";
import { loadConfig } from "../src/config.ts";
import { placementOf } from "../src/placement/kv.ts";
import type { BenchArgs, BenchResult } from "./index.ts";
import { numberOption, timingOptions } from "./support/options.ts";
import { startObservedWorkers } from "./support/observed-workers.ts";

const MAX_BAR_S = 5;
const log = (...a: unknown[]) => console.error("[bench failover]", ...a);

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** `--name` options that override a default of src/config.ts (none given: the defaults are measured). */
const TIMING_OPTIONS: Record<string, string> = {
  "lease-ttl": "LEASE_TTL_MS",
  "lease-renew": "LEASE_RENEW_MS",
  reconcile: "RECONCILE_MS",
  "heartbeat-interval": "HEARTBEAT_INTERVAL_MS",
  "heartbeat-timeout": "HEARTBEAT_TIMEOUT_MS",
  "start-concurrency": "START_CONCURRENCY",
};

export async function run(args?: BenchArgs): Promise<BenchResult> {
  const workers = Array.from({ length: numberOption(args, "workers", 3) }, (_, i) => `w${i + 1}`);
  const sessions = numberOption(args, "sessions", 100);
  const timings = timingOptions(args, TIMING_OPTIONS);
  const defaults = loadConfig();
  const effective = (env: string, fallback: number) => Number(timings[env] ?? fallback);
  // Timings at their defaults; the operator sizes SESSION_CAPACITY so survivors have room for a dead
  // worker's share (the default 50 is exactly 100 sessions over 2 survivors, with no slack).
  const pc = new ProcessCluster(
    { SESSION_CAPACITY: String(numberOption(args, "capacity", 100)), ...timings },
    {},
  );
  let obs: ServiceBroker | undefined;
  try {
    let events: Recorded[];
    ({ obs, events } = await startObservedWorkers(pc, workers, "bench-observer", log));
    const o = obs;
    const workspaces = Array.from({ length: Math.ceil(sessions / 4) }, (_, i) => `fo-${i}`);
    log(`connecting ${workspaces.length * 4} sessions`);
    const t0 = Date.now();
    const accounts = await connectedAccounts(o, events, workspaces, 4);
    log(`connected in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const perNode = await Promise.all(
      workers.map(async (w) => ({ w, list: (await localOf(o, w, 10000)) ?? [] })),
    );
    const victim = perNode.reduce((a, b) => (b.list.length > a.list.length ? b : a));
    const moved = new Set(victim.list.map((s) => s.accountId));
    const survivors = workers.filter((w) => w !== victim.w);
    const movedWs = new Set(victim.list.map((s) => s.workspaceId));
    const claimedAt = new Map<string, number>();
    placementOf(o)!.mirror.on("placement", (ws, entry) => {
      if (movedWs.has(ws) && entry && entry.node !== victim.w && !claimedAt.has(ws))
        claimedAt.set(ws, Date.now());
    });
    let detectedAt = NaN;
    placementOf(o)!.mirror.on("nodes", (live) => {
      if (!live.has(victim.w) && Number.isNaN(detectedAt)) detectedAt = Date.now();
    });
    // The server expires the victim's lease TTL after its last renewal, whatever the kill's timing.
    const lastRenewal = await placementOf(o)!.nodesKv.get(victim.w);
    const sampler = new Sampler(o, () => survivors, victim.w).start();
    const mark = events.length;
    const killedAt = Date.now();
    log(`SIGKILL ${victim.w} hosting ${moved.size} sessions`);
    pc.kill(victim.w, "SIGKILL");
    try {
      await waitAllConnected(
        o,
        () => survivors,
        [...moved],
        "every moved session connected",
        120000,
        victim.w,
      );
    } finally {
      await sampler.stop();
    }
    const connectedAt = new Map<string, number>();
    for (const e of events.slice(mark)) {
      const p = e.payload;
      if (
        e.event === "account.status" &&
        p.status === "connected" &&
        p.node !== victim.w &&
        moved.has(p.accountId)
      ) {
        if (!connectedAt.has(p.accountId)) connectedAt.set(p.accountId, e.at);
      }
    }
    // An event lost in transit falls back to the sampler's first sight.
    for (const id of moved) {
      if (!connectedAt.has(id) && sampler.firstConnectedElsewhere.has(id))
        connectedAt.set(id, sampler.firstConnectedElsewhere.get(id)!);
    }
    const seconds = [...connectedAt.values()].map((t) => (t - killedAt) / 1000).sort((a, b) => a - b);
    const initializingAt = new Map<string, number>();
    for (const e of events.slice(mark)) {
      const p = e.payload;
      // A claim of a lost node's account announces `disconnected`/`node_lost` (else `initializing`).
      const claimed =
        p.status === "initializing" || (p.status === "disconnected" && p.reason === "node_lost");
      if (e.event === "account.status" && claimed && moved.has(p.accountId)) {
        if (!initializingAt.has(p.accountId)) initializingAt.set(p.accountId, e.at);
      }
    }
    const secondsOf = (m: Map<string, number>) => {
      const v = [...m.values()].map((t) => (t - killedAt) / 1000).sort((a, b) => a - b);
      return {
        p50: Math.round(quantile(v, 0.5) * 100) / 100,
        max: Math.round((v.at(-1) ?? NaN) * 100) / 100,
      };
    };
    const qrs = events
      .slice(mark)
      .filter((e) => e.event === "account.qr" && moved.has(e.payload.accountId)).length;
    const result = {
      bench: "failover",
      setup: {
        workers: workers.length,
        sessions: accounts.length,
        killed: victim.w,
        moved: moved.size,
        defaults: Object.keys(timings).length === 0,
        leaseTtlMs: effective("LEASE_TTL_MS", defaults.leaseTtlMs),
        leaseRenewMs: effective("LEASE_RENEW_MS", defaults.leaseRenewMs),
        reconcileMs: effective("RECONCILE_MS", defaults.reconcileMs),
        heartbeatIntervalMs: effective("HEARTBEAT_INTERVAL_MS", defaults.heartbeatIntervalMs),
        heartbeatTimeoutMs: effective("HEARTBEAT_TIMEOUT_MS", defaults.heartbeatTimeoutMs),
        startConcurrency: effective("START_CONCURRENCY", defaults.startConcurrency),
      },
      secondsToConnected: {
        p50: Math.round(quantile(seconds, 0.5) * 100) / 100,
        max: Math.round((seconds.at(-1) ?? NaN) * 100) / 100,
        measured: seconds.length,
      },
      breakdown: {
        leaseExpiresS: lastRenewal
          ? Math.round(
              (lastRenewal.created.getTime() + effective("LEASE_TTL_MS", defaults.leaseTtlMs) - killedAt) /
                10,
            ) / 100
          : null,
        leaseGoneSeenS: Math.round((detectedAt - killedAt) / 10) / 100,
        workspaceClaimedS: secondsOf(claimedAt),
        sessionInitializingS: secondsOf(initializingAt),
      },
      duplicatesSeen: sampler.duplicates.length,
      samples: sampler.samples,
      qrsAsked: qrs,
      bars: {
        [`max<=${MAX_BAR_S}s`]: (seconds.at(-1) ?? Infinity) <= MAX_BAR_S,
        "duplicates==0": sampler.duplicates.length === 0,
        "qrsAsked==0": qrs === 0,
        allMeasured: seconds.length === moved.size,
      },
    };
    return { ...result, pass: Object.values(result.bars).every(Boolean) };
  } finally {
    await pc.stop();
  }
}
