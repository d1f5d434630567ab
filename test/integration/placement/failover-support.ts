// Helpers of the failover specs and bench: connected accounts on a chosen worker, an event recorder,
// and a sampler that polls every node's `session.local` and counts sessions seen on two nodes at once.
import type { ServiceBroker, ServiceSchema } from "moleculer";
import type { PingResult } from "../../../services/session.service.ts";
import type { AccountView } from "../../../src/accounts/types.ts";
import { waitFor } from "../../support/wait.ts";

export interface Recorded {
  event: string;
  at: number;
  payload: any;
}

/** A service recording account.status / account.qr events with their arrival time. */
export function recorder(into: Recorded[]): ServiceSchema {
  const on = (event: string) => (ctx: any) => void into.push({ event, at: Date.now(), payload: ctx.params });
  return {
    name: "recorder",
    events: { "account.status": on("account.status"), "account.qr": on("account.qr") },
  };
}

export async function inParallel<T>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: Math.min(limit, queue.length) }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item);
    }),
  );
}

export interface LocalSession {
  accountId: string;
  workspaceId: string;
  status: string;
  node: string;
  epoch: number;
}

/** True once `nodeId` would broadcast account.status to `broker` (it has learnt the recorder). */
export async function knowsRecorder(broker: ServiceBroker, nodeId: string): Promise<boolean> {
  const events = (await broker.call(
    "$node.events",
    { onlyAvailable: true, withEndpoints: true },
    { nodeID: nodeId, timeout: 2000 },
  )) as { name: string; endpoints?: { nodeID: string }[] }[];
  const status = events.find((e) => e.name === "account.status");
  return status?.endpoints?.some((e) => e.nodeID === broker.nodeID) ?? false;
}

/** `session.local` of one node, or null when it does not answer quickly (stopped, frozen, partitioned). */
export async function localOf(
  broker: ServiceBroker,
  nodeId: string,
  timeout = 1500,
): Promise<LocalSession[] | null> {
  try {
    return (await broker.call("session.local", {}, { nodeID: nodeId, timeout })) as LocalSession[];
  } catch {
    return null;
  }
}

/** `session.local` of a node that is expected to answer: asked again until it does (a node busy under
 * load may miss one short timeout; a sample is waited for, not assumed). */
export function sessionsOf(broker: ServiceBroker, nodeId: string): Promise<LocalSession[]> {
  return waitFor(() => localOf(broker, nodeId, 5000), {
    what: `${nodeId} to answer session.local`,
    timeoutMs: 30000,
    intervalMs: 200,
  }) as Promise<LocalSession[]>;
}

/** Places fresh workspaces until `count` of them are owned by `nodeId` (others stay placed, empty). */
export async function workspacesOn(
  broker: ServiceBroker,
  nodeId: string,
  count: number,
  prefix: string,
): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) {
    if (i > count * 40) throw new Error(`could not place ${count} workspaces on ${nodeId}`);
    const ws = `${prefix}-${i}`;
    const res = (await broker.call("session.ping", { workspaceId: ws })) as PingResult;
    if (res.node === nodeId) out.push(ws);
  }
  return out;
}

/** Creates `perWorkspace` simulated accounts in each workspace, scans them, waits until connected
 * (watching the broadcast status events in `events`, not polling the database). */
export async function connectedAccounts(
  broker: ServiceBroker,
  events: Recorded[],
  workspaces: string[],
  perWorkspace: number,
): Promise<AccountView[]> {
  const jobs = workspaces.flatMap((ws) => Array.from({ length: perWorkspace }, () => ws));
  const accounts: AccountView[] = [];
  const reached = (id: string, status: string) =>
    events.some(
      (e) => e.event === "account.status" && e.payload.accountId === id && e.payload.status === status,
    );
  await inParallel(jobs, 10, async (ws) => {
    const acc = (await broker.call("accounts.create", {
      workspaceId: ws,
      engine: "simulated",
    })) as AccountView;
    // On a timeout, the statuses the account went through say where it stopped.
    const until = (status: string, what: string) =>
      waitFor(() => reached(acc.id, status), { what: `${acc.id} ${what}`, timeoutMs: 30000 }).catch((err) => {
        const seen = statusesOf(events, acc.id).join(" → ") || "none";
        throw new Error(`${(err as Error).message} (statuses seen: ${seen})`);
      });
    await until("qr_scanning", "to show a QR");
    await broker.call("accounts.simulate", { workspaceId: ws, accountId: acc.id, action: "scan" });
    await until("connected", "connected");
    accounts.push(acc);
  });
  return accounts;
}

/** The `account.status` events recorded for an account, as `status` or `status/reason`, in order. */
function statusesOf(events: Recorded[], accountId: string): string[] {
  return events
    .filter((e) => e.event === "account.status" && e.payload.accountId === accountId)
    .map((e) => (e.payload.reason ? `${e.payload.status}/${e.payload.reason}` : String(e.payload.status)));
}

/**
 * Polls `session.local` on `nodes` every `intervalMs`; for each sample, an account listed by two nodes
 * is a duplicate. Keeps, per account, where it was last seen and when it was first seen connected on a
 * node other than `from`.
 */
export class Sampler {
  duplicates: string[] = [];
  samples = 0;
  readonly lastSeen = new Map<string, { node: string; status: string }>();
  readonly firstConnectedElsewhere = new Map<string, number>();
  /** Every status each account was seen in. */
  readonly statuses = new Map<string, Set<string>>();
  private running = false;
  private loop?: Promise<void>;

  constructor(
    private readonly broker: ServiceBroker,
    readonly nodes: () => string[],
    private readonly from?: string,
    private readonly intervalMs = 100,
  ) {}

  start(): this {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const nodes = this.nodes();
        const lists = await Promise.all(nodes.map((n) => localOf(this.broker, n, 1000)));
        const now = Date.now();
        const where = new Map<string, string>();
        lists.forEach((list, i) => {
          for (const s of list ?? []) {
            const other = where.get(s.accountId);
            if (other && other !== nodes[i])
              this.duplicates.push(`${s.accountId} on ${other} and ${nodes[i]}`);
            where.set(s.accountId, nodes[i]);
            this.lastSeen.set(s.accountId, { node: nodes[i], status: s.status });
            if (!this.statuses.has(s.accountId)) this.statuses.set(s.accountId, new Set());
            this.statuses.get(s.accountId)!.add(s.status);
            if (
              s.status === "connected" &&
              nodes[i] !== this.from &&
              !this.firstConnectedElsewhere.has(s.accountId)
            ) {
              this.firstConnectedElsewhere.set(s.accountId, now);
            }
          }
        });
        this.samples++;
        await new Promise((r) => setTimeout(r, this.intervalMs));
      }
    })();
    return this;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /** Accounts among `ids` seen waiting for a QR scan (a restore that needed a person). */
  scanning(ids: Iterable<string>): string[] {
    return [...ids].filter((id) => this.statuses.get(id)?.has("qr_scanning"));
  }
}

/** Where each account runs now, over every node: accountId → [node, status][] (should be one each). */
export async function placementOfAccounts(
  broker: ServiceBroker,
  nodes: string[],
): Promise<Map<string, { node: string; status: string }[]>> {
  const out = new Map<string, { node: string; status: string }[]>();
  const lists = await Promise.all(nodes.map((n) => localOf(broker, n)));
  lists.forEach((list, i) => {
    for (const s of list ?? [])
      out.set(s.accountId, [...(out.get(s.accountId) ?? []), { node: nodes[i], status: s.status }]);
  });
  return out;
}

/** True when every account runs connected on exactly one of `nodes` (never `except`). */
export async function allConnectedOnce(
  broker: ServiceBroker,
  nodes: string[],
  accountIds: string[],
  except?: string,
): Promise<boolean> {
  const where = await placementOfAccounts(broker, nodes);
  return accountIds.every((id) => {
    const w = where.get(id);
    return w?.length === 1 && w[0].status === "connected" && w[0].node !== except;
  });
}

/** Waits until every account runs connected on exactly one of `nodes` (never `except`); the error
 * names how far it got. */
export async function waitAllConnected(
  broker: ServiceBroker,
  nodes: () => string[],
  accountIds: string[],
  what: string,
  timeoutMs: number,
  except?: string,
): Promise<void> {
  let last = "";
  try {
    await waitFor(
      async () => {
        const where = await placementOfAccounts(broker, nodes());
        const counts: Record<string, number> = {};
        for (const id of accountIds) {
          const w = where.get(id);
          const k = !w
            ? "nowhere"
            : w.length > 1
              ? "twice"
              : w[0].node === except
                ? `on ${except}`
                : w[0].status;
          counts[k] = (counts[k] ?? 0) + 1;
        }
        last = JSON.stringify(counts);
        return (counts.connected ?? 0) === accountIds.length;
      },
      { what, timeoutMs, intervalMs: 200 },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last seen ${last}`, { cause: err });
  }
}
