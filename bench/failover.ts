// `npm run bench -- failover [--json] [--workers 4] [--sessions 400] [--lease-ttl 3000] [--lease-renew 1000]
//   [--reconcile 1000] [--start-concurrency 4]`
//
// A real cluster: nats-server (JetStream) and FerretDB, N worker processes (`node scripts/node.ts`,
// simulated engine), and an observer broker here (accounts service + event recorder). It connects
// `sessions` accounts (4 per workspace, workspaces placed by HRW), SIGKILLs the worker hosting the most,
// and measures, over the sessions that had to move: seconds from the kill until each is `connected`
// on a survivor (first account.status "connected" event from another node), p50 and max; sessions
// seen on two nodes at once (every node's session.local polled every 100 ms); QRs asked (must be 0).
// Bar: max ≤ 10 s, 0 duplicates.
import type { ServiceBroker } from "moleculer";
import AccountsService from "../services/accounts.service.ts";
import { ProcessCluster } from "../test/support/process-cluster.ts";
import { waitFor } from "../test/support/wait.ts";
import {
  connectedAccounts,
  knowsRecorder,
  localOf,
  recorder,
  Sampler,
  waitAllConnected,
  type Recorded,
} from "../test/integration/placement/failover-support.ts";
import { placementOf } from "../src/placement/kv.ts";
import type { BenchArgs, BenchResult } from "./index.ts";
import { numberOption } from "./support/options.ts";

const MAX_BAR_S = 10;
const log = (...a: unknown[]) => console.error("[bench failover]", ...a);

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

export async function run(args?: BenchArgs): Promise<BenchResult> {
  const workers = Array.from({ length: numberOption(args, "workers", 4) }, (_, i) => `w${i + 1}`);
  const sessions = numberOption(args, "sessions", 400);
  const timings = {
    LEASE_TTL_MS: String(numberOption(args, "lease-ttl", 3000)),
    LEASE_RENEW_MS: String(numberOption(args, "lease-renew", 1000)),
    RECONCILE_MS: String(numberOption(args, "reconcile", 1000)),
    HEARTBEAT_INTERVAL_MS: "1000",
    HEARTBEAT_TIMEOUT_MS: "3000",
    START_CONCURRENCY: String(numberOption(args, "start-concurrency", 4)),
    // A survivor takes a dead worker's share on top of its own.
    SESSION_CAPACITY: String(numberOption(args, "capacity", 1000)),
  };
  const pc = new ProcessCluster(timings);
  let obs: ServiceBroker | undefined;
  try {
    await pc.startServers();
    log(`starting ${workers.length} workers`);
    await Promise.all(workers.map((id) => pc.startWorker(id)));
    const events: Recorded[] = [];
    obs = await pc.observer("bench-observer", [AccountsService, recorder(events)]);
    const o = obs;
    await waitFor(
      async () =>
        placementOf(o)!.mirror.liveNodes().size === workers.length &&
        workers.every((w) => o.registry.nodes.get(w)?.available) &&
        (await Promise.all(workers.map((w) => knowsRecorder(o, w)))).every(Boolean),
      { what: "workers to be live and to know the observer", timeoutMs: 60000, intervalMs: 250 },
    );
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
      if (e.event === "account.status" && p.status === "initializing" && moved.has(p.accountId)) {
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
        leaseTtlMs: Number(timings.LEASE_TTL_MS),
        leaseRenewMs: Number(timings.LEASE_RENEW_MS),
        reconcileMs: Number(timings.RECONCILE_MS),
        startConcurrency: Number(timings.START_CONCURRENCY),
      },
      secondsToConnected: {
        p50: Math.round(quantile(seconds, 0.5) * 100) / 100,
        max: Math.round((seconds.at(-1) ?? NaN) * 100) / 100,
        measured: seconds.length,
      },
      breakdown: {
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
