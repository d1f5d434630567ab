// What each end of the relay received in bench/events.ts, stamped on this process's clock: the bus
// (a broker of its own in this process: the ground truth) and every Socket.IO client. Also the clock,
// log and wait that the bench's phases share.
import { performance } from "node:perf_hooks";
import { ServiceBroker } from "moleculer";
import { io as connectSocket, type Socket as ClientSocket } from "socket.io-client";
import { RELAYED_EVENTS, workspaceOfEvent } from "../../src/io/relay.ts";
import { eventKey } from "../../test/integration/io/support.ts";
import type { BenchCluster } from "../support/cluster.ts";

// The cluster runs with these QR lifetimes, so a QR's shown-at is `expiresAt` − the TTL of its kind.
export const QR_FIRST_TTL_MS = 60000;
export const QR_REFRESH_MS = 20000;

export const now = () => performance.timeOrigin + performance.now();
export const log = (...a: unknown[]) => console.error("[bench events]", ...a);

export async function waitUntil(what: string, check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) {
      log(`gave up waiting for ${what} after ${timeoutMs} ms`);
      return false;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

export interface Receipt {
  key: string;
  event: string;
  workspaceId: string;
  t: number;
  /** Engine-side stamp of the event, when it carries one (status `at`, QR shown-at). */
  origin?: number;
  /** The status of an account.status event. */
  status?: string;
}

function originOf(event: string, p: any): number | undefined {
  if (event === "account.status" && p.at) return Date.parse(p.at);
  if (event === "account.qr") return p.expiresAt - (p.seq === 1 ? QR_FIRST_TTL_MS : QR_REFRESH_MS);
  return undefined;
}

function receipt(event: string, payload: any, t: number): Receipt {
  return {
    key: eventKey(event, payload),
    event,
    workspaceId: workspaceOfEvent(payload) ?? "?",
    t,
    origin: originOf(event, payload),
    status: event === "account.status" ? payload.status : undefined,
  };
}

/** Ground truth: what the bus carried, each event once, as the observer broker got it. */
export class BusRecord {
  readonly receipts = new Map<string, Receipt>();
  readonly countByWorkspace = new Map<string, number>();
  /** Accounts whose `connected` status went over the bus. */
  readonly connectedIds = new Set<string>();
  /** The first QR (seq 1) of each account, by account id. */
  readonly firstQr = new Map<string, Receipt>();

  record(event: string, params: any): void {
    if (typeof params?.benchSentAt === "number") return; // the relay-only phase's own events
    const r = receipt(event, params, now());
    if (this.receipts.has(r.key)) return;
    this.receipts.set(r.key, r);
    this.countByWorkspace.set(r.workspaceId, (this.countByWorkspace.get(r.workspaceId) ?? 0) + 1);
    if (event === "account.status" && params.status === "connected") this.connectedIds.add(params.accountId);
    if (event === "account.qr" && params.seq === 1) this.firstQr.set(params.accountId, r);
  }
}

/** A broker of this process on the cluster's bus that records every relayed event in `bus`; not started. */
export function busObserver(cluster: BenchCluster, bus: BusRecord): ServiceBroker {
  const observer = cluster.broker("bench-observer");
  observer.createService({
    name: "benchobserver",
    events: Object.fromEntries(
      RELAYED_EVENTS.map((event) => [event, (ctx: any) => bus.record(event, ctx.params)]),
    ),
  });
  return observer;
}

/** Resolves once the cluster's services are up and every node knows the observer's subscriptions:
 * before that, a node skips the observer when it broadcasts. */
export async function observerReady(observer: ServiceBroker, cluster: BenchCluster): Promise<void> {
  await observer.waitForServices(["api", "accounts", "session"], 30000);
  await cluster.knownEverywhere(observer, "benchobserver");
}

/** One client socket: its workspace, what it received, and whether the accounts snapshot came. */
export interface SocketRecord {
  workspaceId: string;
  receipts: Receipt[];
  snapshot: boolean;
}

/** A relay-only event (one stamped `benchSentAt`) as one socket got it. */
export interface SyntheticReceipt {
  socket: number;
  key: string;
  latency: number;
}

/** The Socket.IO clients of this process, each logged in with its workspace's key. */
export class SocketClients {
  /** By socket, in the order opened (the index is `SyntheticReceipt.socket`). */
  readonly records: SocketRecord[] = [];
  readonly synthetic: SyntheticReceipt[] = [];
  /** When the first account.qr of each account reached any socket. */
  readonly firstQrAt = new Map<string, number>();
  private readonly sockets: ClientSocket[] = [];

  /** @param keys API key by workspace; read when a socket opens. */
  constructor(
    private readonly base: string,
    private readonly keys: Map<string, string>,
  ) {}

  open(workspaceId: string): void {
    const i = this.records.length;
    const state: SocketRecord = { workspaceId, receipts: [], snapshot: false };
    this.records.push(state);
    const socket = connectSocket(this.base, {
      auth: { token: this.keys.get(workspaceId) },
      transports: ["websocket"],
    });
    socket.on("accounts.snapshot", () => (state.snapshot = true));
    for (const event of RELAYED_EVENTS) {
      socket.on(event, (payload: any) => {
        const t = now();
        if (typeof payload?.benchSentAt === "number") {
          this.synthetic.push({
            socket: i,
            key: `${payload.accountId}|${payload.n}`,
            latency: t - payload.benchSentAt,
          });
          return;
        }
        state.receipts.push(receipt(event, payload, t));
        if (event === "account.qr" && !this.firstQrAt.has(payload.accountId))
          this.firstQrAt.set(payload.accountId, t);
      });
    }
    this.sockets.push(socket);
  }

  /** Whether every socket opened since the `from`-th has its snapshot. */
  snapshotsIn(from = 0): boolean {
    return this.records.slice(from).every((s) => s.snapshot);
  }

  /** Receipts of every socket together (relay-only events aside). */
  received(): number {
    return this.records.reduce((n, s) => n + s.receipts.length, 0);
  }

  close(): void {
    for (const s of this.sockets) s.close();
  }
}
