// `npm run bench -- events [--json] [--accounts 1000] [--workers 4] [--workspaces 50] [--sockets 100]
//  [--inflight 50] [--setup-inflight 8] [--messages 3] [--start-concurrency N] [--relay-rate 1000]
//  [--relay-seconds 5] [--mongo-pool 8]`
//
// A real cluster (nats-server, FerretDB, one gateway node api+io+accounts and N session workers, each a
// process of its own) with simulated accounts, and Socket.IO clients in this process. It measures:
// - relay latency: from the engine's event to its receipt on a socket. The origin is the event's own
//   stamp: `at` of account.status, and for account.qr the moment the engine showed it
//   (expiresAt − TTL of that QR). Also split into engine→bus (an observer broker in this process gets
//   the same broadcast) and bus→socket (observer receipt → socket receipt, same clock).
// - loss: every socket must get exactly the events the bus carried for its workspace — none missing,
//   none twice, none of another workspace.
// - events/s delivered to sockets while messages flow.
// - time to first QR: POST /api/v1/accounts → first account.qr of that account on a socket, for a
//   wave of `inflight` creates in flight at once, each in a new workspace with a socket of its own, on
//   the cluster holding the `accounts` (phase 3b: `firstQrMs`, the bar). The same wave right after the
//   cluster's processes started, before any other account (phase 1: `firstQrJustStartedMs`), is
//   reported beside it, not held to the bar: there every process still runs uncompiled code (see
//   README, "Measured"). The other accounts are created `setup-inflight` at a time.
// - the relay alone (phase 4, `--relay-rate` events/s for `--relay-seconds`): this process broadcasts
//   stamped account.status events; latency to the sockets with no database write in the path.
// Diagnostics: FerretDB update cost alone and `inflight`-concurrent, this process's event-loop delay,
// the load average (the machine is shared).
// Bars: relay p99 ≤ 50 ms with no loss; first QR p99 ≤ 250 ms (phase 3b).
//
// Here the steps; in events/: receipts.ts (what the bus and each socket received), phases.ts (phases
// 1-3b), relay-only.ts (phase 4), report.ts (loss, latencies, the result).
import { randomBytes } from "node:crypto";
import { loadavg } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import type { ServiceBroker } from "moleculer";
import type { BenchArgs, BenchResult } from "./index.ts";
import { BenchCluster } from "./support/cluster.ts";
import { processTree } from "./support/cpu.ts";
import { measureDbWrites } from "./support/db-writes.ts";
import { numberOption } from "./support/options.ts";
import {
  createKeys,
  createTheRest,
  GatewayClient,
  justStartedWave,
  messagePhase,
  openSockets,
  scanEvery,
  warmWave,
  workspaceIds,
  type EventsPhases,
} from "./events/phases.ts";
import {
  BusRecord,
  busObserver,
  log,
  observerReady,
  QR_FIRST_TTL_MS,
  QR_REFRESH_MS,
  SocketClients,
} from "./events/receipts.ts";
import { relayOnlyPhase } from "./events/relay-only.ts";
import { compareDeliveries, eventsResult, logUnmatched, type EventsSetup } from "./events/report.ts";

function setupOf(args: BenchArgs): EventsSetup {
  return {
    accounts: numberOption(args, "accounts", 1000),
    workers: numberOption(args, "workers", 4),
    workspaces: numberOption(args, "workspaces", 50),
    sockets: numberOption(args, "sockets", 100),
    inflight: numberOption(args, "inflight", 50),
    setupInflight: numberOption(args, "setup-inflight", 8),
    messagesPerAccount: numberOption(args, "messages", 3),
    mongoPoolPerClient: numberOption(args, "mongo-pool", 8),
  };
}

function clusterOf(args: BenchArgs, setup: EventsSetup, adminKey: string): BenchCluster {
  return new BenchCluster(
    {
      ENGINE: "simulated",
      ADMIN_API_KEY: adminKey,
      QR_FIRST_TTL_MS: String(QR_FIRST_TTL_MS),
      QR_REFRESH_MS: String(QR_REFRESH_MS),
      // Accounts must still be scannable when the last of 1,000 is created (6 QRs last 160 s only).
      QR_MAX: "100",
      RATE_LIMIT_PER_MINUTE: "10000000",
      SESSION_CAPACITY: String(Math.ceil((setup.accounts / setup.workers) * 2)),
      HEARTBEAT_INTERVAL_MS: "1000",
      HEARTBEAT_TIMEOUT_MS: "4000",
      // Production default (2) unless --start-concurrency is given.
      ...(args.options["start-concurrency"]
        ? { START_CONCURRENCY: String(args.options["start-concurrency"]) }
        : {}),
    },
    setup.mongoPoolPerClient,
  );
}

/** The gateway (api + io + accounts) and `workers` session workers; resolves to the gateway's URL. */
async function startNodes(cluster: BenchCluster, workers: number): Promise<string> {
  const port = await cluster.freePort();
  log(`starting gateway + ${workers} workers (namespace ${cluster.namespace})`);
  await Promise.all([
    cluster.startNode("gateway", ["api", "io", "accounts"], { PORT: String(port) }),
    ...Array.from({ length: workers }, (_, i) => cluster.startNode(`worker-${i + 1}`, ["session"])),
  ]);
  return `http://127.0.0.1:${port}`;
}

export async function run(args: BenchArgs): Promise<BenchResult> {
  const setup = setupOf(args);
  const adminKey = randomBytes(16).toString("hex");
  const loadAtStart = loadavg().map((x) => Math.round(x * 10) / 10);
  // How late this process's own timers fire: the scheduling noise every latency here includes.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();

  const cluster = clusterOf(args, setup, adminKey);
  let sockets: SocketClients | undefined;
  let observer: ServiceBroker | undefined;
  const interrupted = () => {
    void cluster.stop().finally(() => process.exit(130));
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  try {
    await cluster.startServers();
    // Diagnostic: what one status write costs on this database, alone and with `inflight` concurrent
    // (every transition is persisted before it is broadcast, so this sits inside the relay latency).
    const dbUpdateMs = await measureDbWrites(cluster.mongoUrl, setup.inflight);
    const base = await startNodes(cluster, setup.workers);
    const bus = new BusRecord();
    observer = busObserver(cluster, bus);
    await observer.start();
    await observerReady(observer, cluster);

    const keys = new Map<string, string>();
    sockets = new SocketClients(base, keys);
    const p: EventsPhases = {
      api: new GatewayClient(base),
      adminKey,
      keys,
      bus,
      sockets,
      created: { list: [], createdAt: new Map(), respondedAt: new Map() },
    };
    const wsIds = workspaceIds("bench", setup.workspaces);
    await createKeys(p, wsIds);
    await openSockets(p, wsIds, setup.sockets);

    const wave = Math.min(setup.inflight, setup.accounts);
    // Where the CPU of the waves goes (2 cores shared by every process of the cluster and this one).
    const procs = processTree();
    const justStarted = await justStartedWave(p, wsIds, wave, procs);
    const theRest = await createTheRest(p, wsIds, wave, setup.accounts, setup.setupInflight);
    await scanEvery(p, setup.setupInflight);
    const messaged = await messagePhase(p, setup.messagesPerAccount, setup.inflight);
    const warm = await warmWave(p, wave, procs);
    const relayOnly = await relayOnlyPhase(
      observer,
      sockets,
      wsIds,
      setup.accounts,
      numberOption(args, "relay-rate", 1000),
      numberOption(args, "relay-seconds", 5),
    );

    const deliveries = compareDeliveries(bus, sockets);
    logUnmatched(deliveries.unmatched, p.created, theRest.startedAt);
    return eventsResult({
      setup,
      api: p.api,
      bus,
      sockets,
      created: p.created,
      deliveries,
      dbUpdateMs,
      relayOnly,
      messages: messaged,
      justStarted,
      createSeconds: theRest.seconds,
      warm,
      loadAtStart,
      loopDelay,
    });
  } finally {
    process.off("SIGINT", interrupted);
    process.off("SIGTERM", interrupted);
    sockets?.close();
    await observer?.stop().catch(() => undefined);
    await cluster.stop();
  }
}
