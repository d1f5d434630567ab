// `npm run bench -- webhooks [--json] [--nodes 2] [--endpoints 2] [--accounts 50] [--events 20]
//  [--fail-rate F] [--poll-ms 1000] [--logged 1]`
//
// A real cluster (nats-server, FerretDB, N webhooks nodes, each a process of its own) fed by a
// publisher broker in this process that publishes `account.status` events as the session runtime
// does: each appended to the workspace's event log, then broadcast with its cursor (`--logged 0`
// broadcasts them unlogged, as QR codes are); a local HTTP receiver per endpoint answers 500 to a share
// of the requests (`fail-rate`). The burst is published as fast as the log takes it, in order. Without
// `--fail-rate` it runs twice, each on a fresh cluster: receivers answering 200, then 10 % failures.
// It measures:
// - end-to-end latency: from the event's `at` to its acceptance by the receiver (retries included);
// - deliveries/s accepted across endpoints;
// - loss, duplicates (an event accepted twice by one endpoint) and order violations (an event of an
//   account accepted before an earlier one of the same account) — all must be 0;
// - outbox rows: exactly one per (event, endpoint), whichever node recorded them (one records a
//   workspace at a time; during a hand-over two may);
// - where the time goes: rows recorded and deliveries accepted per quarter second from the first
//   publish (`timeline`), and the CPU seconds each process spent in the burst (`cpu`).
// Bar: no loss, no duplicate, no order violation, one row per (event, endpoint).
import { createServer, type Server } from "node:http";
import { performance } from "node:perf_hooks";
import { MongoClient } from "mongodb";
import { ServiceBroker } from "moleculer";
import type { AccountStatusEvent } from "../src/accounts/types.ts";
import type { BenchArgs, BenchResult } from "./index.ts";
import { numberOption } from "./support/options.ts";
import { BenchCluster } from "./support/cluster.ts";
import { cpuBetween, processTree, sampleCpu } from "./support/cpu.ts";
import { summarize } from "./support/stats.ts";
import { loggingPublisher, publishVia } from "../src/session/event-publisher.ts";
import { EventsRepo } from "../src/store/events-repo.ts";
import { HEADER_ATTEMPT } from "../src/webhooks/http-delivery.ts";
import { RECORDER_SLOTS, shareOf } from "../src/webhooks/recorder-slots.ts";
import { LeaseRepo, RECORDERS_COLLECTION } from "../src/store/webhook-leases-repo.ts";
import { waitFor } from "../test/support/wait.ts";

/** Issue #18's bars for a burst whose receivers answer 200. */
const RATE_BAR = 1000;
const P99_BAR_MS = 2000;

const log = (...a: unknown[]) => console.error("[bench webhooks]", ...a);
const now = () => performance.timeOrigin + performance.now();

interface Receiver {
  server: Server;
  url: string;
  /** eventId → acceptance time, and per account the accepted order of event indexes. */
  accepted: Map<string, number>;
  orderViolations: number;
  duplicates: number;
  /** The attempt number each duplicate carried (a retry after a failed attempt says > 1). */
  duplicateAttempts: number[];
  requests: number;
}

async function startReceiver(failRate: number, lastIndex: Map<string, number>): Promise<Receiver> {
  const r: Receiver = {
    server: createServer(),
    url: "",
    accepted: new Map(),
    orderViolations: 0,
    duplicates: 0,
    duplicateAttempts: [],
    requests: 0,
  };
  const lastSeen = new Map<string, number>();
  r.server.on("request", (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      r.requests++;
      if (Math.random() < failRate) {
        res.writeHead(500).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString());
      const id: string = body.id;
      if (r.accepted.has(id)) {
        r.duplicates++;
        r.duplicateAttempts.push(Number(req.headers[HEADER_ATTEMPT.toLowerCase()]));
      } else r.accepted.set(id, now());
      const idx = lastIndex.get(id) ?? -1;
      const prev = lastSeen.get(body.accountId) ?? -1;
      if (idx < prev) r.orderViolations++;
      lastSeen.set(body.accountId, Math.max(prev, idx));
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => r.server.listen(0, "127.0.0.1", () => resolve()));
  r.url = `http://127.0.0.1:${(r.server.address() as { port: number }).port}/hook`;
  return r;
}

/** Without `--fail-rate`: the burst with receivers answering 200 (the bars), then at 10 % failures. */
export async function run(args: BenchArgs): Promise<BenchResult> {
  if (args.options["fail-rate"] !== undefined) return burst(args, numberOption(args, "fail-rate", 0.1));
  const answering = await burst(args, 0);
  const failing = await burst(args, 0.1);
  return { ...answering, failing, pass: answering.pass === true && failing.pass === true };
}

async function burst(args: BenchArgs, failRate: number): Promise<BenchResult> {
  const nodes = numberOption(args, "nodes", 2);
  const endpoints = numberOption(args, "endpoints", 2);
  const accounts = numberOption(args, "accounts", 50);
  const events = numberOption(args, "events", 20);
  // The service's default (WEBHOOK_POLL_MS): a shorter poll only adds reads of the outbox.
  const pollMs = numberOption(args, "poll-ms", 1000);
  const logged = numberOption(args, "logged", 1) !== 0;
  const total = accounts * events;
  const cluster = new BenchCluster({
    WEBHOOK_POLL_MS: String(pollMs),
    WEBHOOK_ALLOW_PRIVATE: "127.0.0.1",
    WEBHOOK_BACKOFF_BASE_MS: "50",
    WEBHOOK_BACKOFF_MAX_MS: "400",
    WEBHOOK_MAX_ATTEMPTS: "100",
    HEARTBEAT_INTERVAL_MS: "1000",
    HEARTBEAT_TIMEOUT_MS: "3000",
  });
  let pub: ServiceBroker | undefined;
  const receivers: Receiver[] = [];
  try {
    await cluster.startServers();
    for (let i = 1; i <= nodes; i++) await cluster.startNode(`wh${i}`, ["webhooks"]);
    pub = cluster.broker("bench-publisher");
    await pub.start();
    await pub.waitForServices(["webhooks"], 30000);
    // The burst goes to a settled cluster: every node holds its share of the recorder slots. A node
    // that sees another join hands it slots within a tick or two; a burst during that hand-over
    // measures the hand-over (the README reports it apart).
    log(`waiting for the ${nodes} nodes to share the recorder slots`);
    const settled = Date.now();
    await recordersSettled(cluster.mongoUrl, nodes);
    log(`recorder slots shared after ${Date.now() - settled} ms`);

    const indexOf = new Map<string, number>();
    for (let e = 0; e < endpoints; e++) {
      const r = await startReceiver(failRate, indexOf);
      receivers.push(r);
      await pub.call("webhooks.create", { workspaceId: "bench", url: r.url, events: ["account.status"] });
    }

    // The ids the service will derive (src/webhooks/events.ts): read back from the receivers by
    // matching `at`, which is unique per event here.
    const sentAt = new Map<string, number>();
    log(
      `${nodes} webhooks nodes, ${endpoints} endpoints, ${accounts} accounts × ${events} events, fail rate ${failRate}`,
    );
    const { eventIdOf } = await import("../src/webhooks/events.ts");
    const logClient = await MongoClient.connect(cluster.mongoUrl);
    const publisher = loggingPublisher(
      new EventsRepo(logClient.db()),
      (event, payload) => pub!.broadcast(event, payload),
      { error: log, warn: log },
    );
    const publishing: Promise<unknown>[] = [];
    const procs = processTree();
    const cpuStart = sampleCpu(procs);
    const t0 = now();
    for (let e = 0; e < events; e++) {
      for (let a = 0; a < accounts; a++) {
        const at = now();
        const ev: AccountStatusEvent = {
          accountId: `acc_${a}`,
          workspaceId: "bench",
          sessionId: `simulated_bench_${a}`,
          status: e % 2 ? "connected" : "disconnected",
          previousStatus: null,
          node: "bench-worker",
          epoch: 1,
          at: new Date(at).toISOString(),
        };
        // A unique field per event: `at` has ms resolution only.
        (ev as AccountStatusEvent & { n: number }).n = e;
        const id = eventIdOf("account.status", ev);
        indexOf.set(id, e);
        sentAt.set(id, at);
        // Logged: appends queue up per workspace (in order); each broadcast follows its append.
        if (logged) publishing.push(Promise.resolve(publishVia(publisher)("account.status", ev)));
        else await pub.broadcast("account.status", ev);
      }
    }
    await Promise.all(publishing);
    const publishMs = now() - t0;
    await logClient.close();
    const deadline = Date.now() + 120000;
    while (receivers.some((r) => r.accepted.size < total) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const elapsedMs = now() - t0;
    const cpu = cpuBetween(cpuStart, sampleCpu(procs));

    const latencies: number[] = [];
    for (const r of receivers) for (const [id, t] of r.accepted) latencies.push(t - (sentAt.get(id) ?? t));
    const client = await MongoClient.connect(cluster.mongoUrl);
    const outbox = await client
      .db()
      .collection("webhook_outbox")
      .find({}, { projection: { eventId: 1, createdAt: 1, attempts: 1, lastError: 1 } })
      .toArray();
    await client.close();
    const rows = outbox.length;
    // Where the time goes: from publishing an event to its row in the outbox (the rest is delivery).
    const recordLatency = summarize(
      outbox.map((r) => (r.createdAt as Date).getTime() - (sentAt.get(r.eventId as string) ?? NaN)),
    );

    const timeline = timelineOf(
      t0,
      outbox.map((r) => (r.createdAt as Date).getTime()),
      receivers.flatMap((r) => [...r.accepted.values()]),
    );
    const lost = receivers.reduce((n, r) => n + (total - r.accepted.size), 0);
    const duplicates = receivers.reduce((n, r) => n + r.duplicates, 0);
    const orderViolations = receivers.reduce((n, r) => n + r.orderViolations, 0);
    const requests = receivers.reduce((n, r) => n + r.requests, 0);
    const rate = Math.round((total * endpoints * 1000) / elapsedMs);
    const latency = summarize(latencies);
    const result: BenchResult = {
      bench: "webhooks",
      nodes,
      endpoints,
      accounts,
      eventsPerAccount: events,
      failRate,
      pollMs,
      logged,
      published: total,
      publishMs: Math.round(publishMs),
      accepted: receivers.reduce((n, r) => n + r.accepted.size, 0),
      requests,
      lost,
      duplicates,
      duplicateAttempts: receivers.flatMap((r) => r.duplicateAttempts),
      // Rows that needed more than one attempt, and the last error of a few (retries explain duplicates).
      retriedRows: outbox.filter((r) => (r.attempts as number) > 1).length,
      retryErrors: [...new Set(outbox.map((r) => r.lastError as string | null).filter(Boolean))].slice(0, 3),
      orderViolations,
      outboxRows: rows,
      expectedOutboxRows: total * endpoints,
      deliveriesPerSec: rate,
      latencyMs: latency,
      recordedMs: recordLatency,
      timeline,
      cpu,
    };
    const intact = lost === 0 && duplicates === 0 && orderViolations === 0 && rows === total * endpoints;
    // The rate and latency bars hold for receivers that answer 200; a run with failures is
    // reported beside them, held to being intact only.
    const bars =
      failRate > 0
        ? { intact }
        : {
            intact,
            [`deliveriesPerSec>=${RATE_BAR}`]: rate >= RATE_BAR,
            [`p99<=${P99_BAR_MS}ms`]: (latency.p99 ?? Infinity) <= P99_BAR_MS,
          };
    return { ...result, bars, pass: Object.values(bars).every(Boolean) };
  } finally {
    await pub?.stop().catch(() => undefined);
    for (const r of receivers) r.server.close();
    await cluster.stop();
  }
}

/** Rows recorded and deliveries accepted per quarter second from `t0`: `[ms, recorded, accepted]`. */
function timelineOf(t0: number, recorded: number[], accepted: number[]): [number, number, number][] {
  const STEP = 250;
  const buckets = new Map<number, [number, number, number]>();
  const at = (t: number) => {
    const k = Math.max(0, Math.floor((t - t0) / STEP)) * STEP;
    if (!buckets.has(k)) buckets.set(k, [k, 0, 0]);
    return buckets.get(k)!;
  };
  for (const t of recorded) at(t)[1]++;
  for (const t of accepted) at(t)[2]++;
  return [...buckets.values()].sort((a, b) => a[0] - b[0]);
}

/** Resolves once each of `nodes` holders keeps its share of the recorder slots unexpired. */
async function recordersSettled(mongoUrl: string, nodes: number): Promise<void> {
  const client = await MongoClient.connect(mongoUrl);
  try {
    // Only read here (the TTL is that of claims, which this repo never makes).
    const recorders = new LeaseRepo(client.db(), "bench", 0, RECORDERS_COLLECTION);
    await waitFor(
      async () => {
        const held = new Map<string, number>();
        for (const holder of (await recorders.holders()).values())
          held.set(holder, (held.get(holder) ?? 0) + 1);
        const share = shareOf(RECORDER_SLOTS, nodes);
        const counts = [...held.values()];
        const all = counts.reduce((a, b) => a + b, 0) === RECORDER_SLOTS;
        return held.size === nodes && all && counts.every((n) => n <= share);
      },
      { what: "the recorder slots to be shared by every webhooks node", timeoutMs: 30000, intervalMs: 200 },
    );
  } finally {
    await client.close();
  }
}
