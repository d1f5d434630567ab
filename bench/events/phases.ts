// The phases of bench/events.ts against the gateway's REST API, in the order the bench runs them:
// workspaces and their sockets; phase 1, one wave of creates on the cluster that just started;
// phase 2, the other accounts, then every QR scanned; phase 3, messages; phase 3b, the wave again on
// the running cluster. The relay-only phase 4 is in relay-only.ts.
import { performance } from "node:perf_hooks";
import { cpuBetween, processTree, sampleCpu } from "../support/cpu.ts";
import { inParallel } from "../support/stats.ts";
import { log, now, waitUntil, type BusRecord, type SocketClients } from "./receipts.ts";

/** The gateway's REST API, and the bookkeeping of the requests that failed. */
export class GatewayClient {
  /** Failed requests by kind (`create`, `scan`, `message`). */
  readonly errors: Record<string, number> = {};
  /** Kinds of request given up on. */
  readonly abandoned = new Set<string>();
  private readonly consecutiveFailures: Record<string, number> = {};

  constructor(private readonly base: string) {}

  async call(method: string, path: string, key: string, body?: unknown): Promise<any> {
    const res = await fetch(this.base + path, {
      method,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  }

  /** A failed request is counted, not fatal: the bench reports what happened under load. */
  // A phase whose requests keep failing (the database stopped answering) is given up, so the
  // relay-only phase still runs and the result says where the cluster stopped.
  async counted(what: string, job: () => Promise<unknown>): Promise<void> {
    if (this.abandoned.has(what)) return;
    try {
      await job();
      this.consecutiveFailures[what] = 0;
    } catch (err) {
      this.errors[what] = (this.errors[what] ?? 0) + 1;
      this.consecutiveFailures[what] = (this.consecutiveFailures[what] ?? 0) + 1;
      if (this.errors[what] <= 3) log(`${what} failed:`, (err as Error).message.slice(0, 200));
      if (this.consecutiveFailures[what] >= 20 && !this.abandoned.has(what)) {
        this.abandoned.add(what);
        log(`giving up on ${what}: 20 failures in a row`);
      }
    }
  }
}

/** The accounts of phases 1 and 2 in the order created, with when each POST was sent and answered. */
export interface CreatedAccounts {
  list: { id: string; workspaceId: string }[];
  createdAt: Map<string, number>;
  respondedAt: Map<string, number>;
}

/** What the phases share. */
export interface EventsPhases {
  api: GatewayClient;
  adminKey: string;
  /** API key by workspace. */
  keys: Map<string, string>;
  bus: BusRecord;
  sockets: SocketClients;
  created: CreatedAccounts;
}

/** How long a wave took until its last QR was on a socket, and where its CPU went meanwhile. */
export interface Wave {
  wallMs: number;
  cpu: ReturnType<typeof cpuBetween>;
}

/** `n` workspace ids: `<prefix>000`, `<prefix>001`, … */
export function workspaceIds(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(3, "0")}`);
}

export async function createKeys(p: EventsPhases, workspaces: string[]): Promise<void> {
  for (const ws of workspaces)
    p.keys.set(ws, (await p.api.call("POST", `/api/v1/workspaces/${ws}/keys`, p.adminKey, {})).key);
}

/** `count` sockets spread over `workspaces`; resolves once each has its snapshot. */
export async function openSockets(p: EventsPhases, workspaces: string[], count: number): Promise<void> {
  for (let i = 0; i < count; i++) p.sockets.open(workspaces[i % workspaces.length]);
  await waitUntil("every socket's snapshot", () => p.sockets.snapshotsIn(), 30000);
  log(`${count} sockets connected over ${workspaces.length} workspaces`);
}

function create(p: EventsPhases, workspaceId: string, i: number): Promise<void> {
  return p.api.counted("create", async () => {
    const t0 = now();
    const account = await p.api.call("POST", "/api/v1/accounts", p.keys.get(workspaceId)!, {
      name: `bench ${i}`,
    });
    p.created.createdAt.set(account.id, t0);
    p.created.respondedAt.set(account.id, now());
    p.created.list.push({ id: account.id, workspaceId });
  });
}

/** Phase 1: one wave of `size` creates at once on the cluster that just started, until each has a QR
 * on a socket (reported; the bar is phase 3b's). */
export async function justStartedWave(
  p: EventsPhases,
  workspaces: string[],
  size: number,
  procs: ReturnType<typeof processTree>,
): Promise<Wave & { accounts: CreatedAccounts["list"] }> {
  const cpuStart = sampleCpu(procs);
  await Promise.all(Array.from({ length: size }, (_, i) => create(p, workspaces[i % workspaces.length], i)));
  const accounts = [...p.created.list];
  await waitUntil(
    "a QR for the just-started wave",
    () => accounts.every((a) => p.sockets.firstQrAt.has(a.id)),
    60000,
  );
  const cpu = cpuBetween(cpuStart, sampleCpu(procs));
  const wallMs = Math.round(performance.now() - cpuStart.at);
  log(`wave on the just-started cluster: ${accounts.length} creates in flight, QRs in`);
  return { accounts, cpu, wallMs };
}

/** Phase 2a: accounts `from` … `total − 1`, `inflight` at a time (FerretDB serialises writes: 50
 * concurrent writers for minutes wedge it, see dbUpdateMs), until each has a QR on a socket. */
export async function createTheRest(
  p: EventsPhases,
  workspaces: string[],
  from: number,
  total: number,
  inflight: number,
): Promise<{ startedAt: number; seconds: number }> {
  const startedAt = now();
  await inParallel(
    Array.from({ length: total - from }, (_, k) => from + k),
    inflight,
    (i) => create(p, workspaces[i % workspaces.length], i),
  );
  const seconds = (now() - startedAt) / 1000;
  const ids = p.created.list;
  await waitUntil("a QR for every account", () => ids.every((a) => p.sockets.firstQrAt.has(a.id)), 60000);
  log(`created ${ids.length} accounts (${total - from} in ${seconds.toFixed(1)} s after the wave)`);
  return { startedAt, seconds };
}

/** Phase 2b: every account's QR scanned, `inflight` at a time, until each is connected on the bus. */
export async function scanEvery(p: EventsPhases, inflight: number): Promise<void> {
  const ids = p.created.list;
  await inParallel(ids, inflight, (a, i) =>
    p.api.counted("scan", () =>
      p.api.call("POST", `/api/v1/accounts/${a.id}/simulate/scan`, p.keys.get(a.workspaceId)!, {
        phoneNumber: `4915${String(100000000 + i)}`,
      }),
    ),
  );
  await waitUntil("every account connected", () => p.bus.connectedIds.size >= ids.length, 60000);
  log(`${p.bus.connectedIds.size} accounts connected`);
}

/** Phase 3: `perAccount` messages to every account, `inflight` at a time; the throughput window lasts
 * until every socket has what the bus carried for its workspace. */
export async function messagePhase(
  p: EventsPhases,
  perAccount: number,
  inflight: number,
): Promise<{ seconds: number; delivered: number }> {
  const receiptsBefore = p.sockets.received();
  const started = now();
  const jobs = p.created.list.flatMap((a) => Array.from({ length: perAccount }, (_, k) => ({ ...a, k })));
  await inParallel(jobs, inflight, (job) =>
    p.api.counted("message", () =>
      p.api.call("POST", `/api/v1/accounts/${job.id}/simulate/message`, p.keys.get(job.workspaceId)!, {
        from: "4917000000001",
        text: `hello ${job.k}`,
      }),
    ),
  );
  const expectedTotal = () =>
    p.sockets.records.reduce((n, s) => n + (p.bus.countByWorkspace.get(s.workspaceId) ?? 0), 0);
  await waitUntil(
    "every socket to catch up with the bus",
    () => p.sockets.received() >= expectedTotal(),
    30000,
  );
  const seconds = (now() - started) / 1000;
  return { seconds, delivered: p.sockets.received() - receiptsBefore };
}

/** Phase 3b (the bar): the wave of phase 1 again — `size` creates at once, each in a new workspace
 * with a socket of its own — on the cluster holding the accounts, as the issue sets it. */
export async function warmWave(
  p: EventsPhases,
  size: number,
  procs: ReturnType<typeof processTree>,
): Promise<Wave & { created: number; firstQrMs: number[] }> {
  const warmWs = workspaceIds("benchw", size);
  await createKeys(p, warmWs);
  const socketsFrom = p.sockets.records.length;
  for (const ws of warmWs) p.sockets.open(ws);
  await waitUntil("the new workspaces' snapshots", () => p.sockets.snapshotsIn(socketsFrom), 30000);
  const wave: { id: string; t0: number }[] = [];
  const cpuStart = sampleCpu(procs);
  await Promise.all(
    warmWs.map((ws, i) =>
      p.api.counted("create", async () => {
        const t0 = now();
        const account = await p.api.call("POST", "/api/v1/accounts", p.keys.get(ws)!, { name: `warm ${i}` });
        wave.push({ id: account.id, t0 });
      }),
    ),
  );
  await waitUntil("a QR for the warm wave", () => wave.every((a) => p.sockets.firstQrAt.has(a.id)), 60000);
  const cpu = cpuBetween(cpuStart, sampleCpu(procs));
  const wallMs = Math.round(performance.now() - cpuStart.at);
  const firstQrMs = wave.map((a) => p.sockets.firstQrAt.get(a.id)! - a.t0).filter(Number.isFinite);
  log(`wave on the running cluster: ${wave.length} creates in flight, QRs in`);
  return { created: wave.length, firstQrMs, cpu, wallMs };
}
