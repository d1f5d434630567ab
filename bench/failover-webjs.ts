// `npm run bench -- failover-webjs [--json] [--sessions 5] [--lease-ttl MS] [--lease-renew MS]
//   [--start-concurrency N]`
//
// Failover of real webjs sessions: two worker processes (real Chromium, real whatsapp-web.js) on the
// local WhatsApp Web stand-in, `sessions` accounts linked on w1 (one workspace), their profiles saved;
// then w1 is SIGKILLed and the bench measures: ms until every Chromium process of w1 is gone, seconds
// until each session is connected on w2 again from its saved profile (p50, max), QRs asked (must be
// 0), and the most browsers the stand-in saw linked to one session at once (must be 1).
// Without timing options the workers run the defaults of src/config.ts. The stand-in answers at once,
// so the figure is the cluster's and Chromium's part of a failover; real WhatsApp adds its own
// reconnect time, not measured here.
import { processesMentioning } from "../src/engines/webjs/chromium.ts";
import { loadConfig } from "../src/config.ts";
import { waitFor } from "../test/support/wait.ts";
import { startWhatsappStandin, type Standin } from "../test/support/whatsapp-standin.ts";
import { Sampler, waitAllConnected } from "../test/integration/placement/failover-support.ts";
import {
  browsersOfWorker,
  isAlive,
  linkedAccountsOn,
  startWebjsCluster,
  type WebjsCluster,
} from "../test/integration/engines/webjs-cluster.ts";
import type { BenchArgs, BenchResult } from "./index.ts";
import { numberOption, timingOptions } from "./support/options.ts";

const log = (...a: unknown[]) => console.error("[bench failover-webjs]", ...a);
/** The bars: browsers gone within 1 s of the SIGKILL; sessions back within the simulated bar. */
const BROWSERS_GONE_BAR_MS = 1000;
const CONNECTED_BAR_S = 5;

const TIMING_OPTIONS: Record<string, string> = {
  "lease-ttl": "LEASE_TTL_MS",
  "lease-renew": "LEASE_RENEW_MS",
  "start-concurrency": "START_CONCURRENCY",
};

const quantile = (sorted: number[], q: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

export async function run(args?: BenchArgs): Promise<BenchResult> {
  const sessions = numberOption(args, "sessions", 5);
  const timings = timingOptions(args, TIMING_OPTIONS);
  const defaults = loadConfig();
  let standin: Standin | undefined;
  let c: WebjsCluster | undefined;
  try {
    standin = await startWhatsappStandin({ mode: "qr" });
    log("starting nats-server, FerretDB and two webjs workers");
    c = await startWebjsCluster(standin, ["w1", "w2"], timings, {});
    log(`linking ${sessions} sessions on w1`);
    const accounts = await linkedAccountsOn(c, standin, "w1", sessions, (msg) => log(msg));
    const browsers = browsersOfWorker(c, "w1");
    const moved = accounts.map((a) => a.id);
    const mark = c.events.length;
    const sampler = new Sampler(c.obs, () => ["w2"], "w1").start();
    log(`SIGKILL w1 (${browsers.length} Chromium processes)`);
    const killedAt = Date.now();
    c.pc.kill("w1", "SIGKILL");
    let goneMs = NaN;
    try {
      await waitFor(() => browsers.every((pid) => !isAlive(pid)), {
        what: `w1's ${browsers.length} browser processes to die`,
        timeoutMs: 10000,
        intervalMs: 10,
      });
      goneMs = Date.now() - killedAt;
      log(`browsers gone after ${goneMs} ms; waiting for the sessions on w2`);
      await waitAllConnected(c.obs, () => ["w2"], moved, "w1's sessions connected on w2", 120000, "w1");
    } finally {
      await sampler.stop();
    }
    const connectedAt = new Map<string, number>();
    for (const e of c.events.slice(mark)) {
      const p = e.payload;
      if (
        e.event === "account.status" &&
        p.status === "connected" &&
        p.node === "w2" &&
        !connectedAt.has(p.accountId)
      )
        connectedAt.set(p.accountId, e.at);
    }
    for (const id of moved)
      if (!connectedAt.has(id) && sampler.firstConnectedElsewhere.has(id))
        connectedAt.set(id, sampler.firstConnectedElsewhere.get(id)!);
    const seconds = [...connectedAt.values()].map((t) => (t - killedAt) / 1000).sort((a, b) => a - b);
    const qrs = c.events
      .slice(mark)
      .filter((e) => e.event === "account.qr" && moved.includes(e.payload.accountId)).length;
    const maxBrowsers = Math.max(...standin.maxBrowsers.values());
    const round = (s: number) => Math.round(s * 100) / 100;
    const result = {
      bench: "failover-webjs",
      setup: {
        sessions,
        chromiumProcesses: browsers.length,
        defaults: Object.keys(timings).length === 0,
        leaseTtlMs: Number(timings.LEASE_TTL_MS ?? defaults.leaseTtlMs),
        leaseRenewMs: Number(timings.LEASE_RENEW_MS ?? defaults.leaseRenewMs),
        startConcurrency: Number(timings.START_CONCURRENCY ?? defaults.startConcurrency),
      },
      browsersGoneMs: goneMs,
      secondsToConnected: {
        p50: round(quantile(seconds, 0.5)),
        max: round(seconds.at(-1) ?? NaN),
        measured: seconds.length,
      },
      qrsAsked: qrs,
      duplicatesSeen: sampler.duplicates.length,
      maxBrowsersPerSession: maxBrowsers,
      bars: {
        [`browsersGone<=${BROWSERS_GONE_BAR_MS}ms`]: goneMs <= BROWSERS_GONE_BAR_MS,
        [`max<=${CONNECTED_BAR_S}s`]: (seconds.at(-1) ?? Infinity) <= CONNECTED_BAR_S,
        "qrsAsked==0": qrs === 0,
        "maxBrowsersPerSession==1": maxBrowsers === 1,
        allMeasured: seconds.length === moved.length,
      },
    };
    return { ...result, pass: Object.values(result.bars).every(Boolean) };
  } finally {
    const dir = c?.pc.dir;
    await c?.pc.stop();
    await standin?.close();
    if (dir) log(`${processesMentioning(dir).length} browser processes left after the stop`);
  }
}
