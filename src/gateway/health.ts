// GET /health/ready: the gateway can serve requests when NATS and MongoDB answer (each within 1.5 s)
// and at least one worker runs `session` holding a current lease (one that fenced itself, JetStream away,
// still answers on the bus but runs nothing); otherwise 503 with the failing checks.
import type { ServiceBroker } from "moleculer";
import { mirrorOf } from "../placement/kv.ts";
import type { StatsRepo } from "../store/stats-repo.ts";

export interface Check {
  ok: boolean;
  error?: string;
  nodes?: string[];
}

export interface Readiness {
  ready: boolean;
  checks: { nats: Check; mongo: Check; workers: Check };
}

function within<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    p,
    new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`no answer in ${ms} ms`)), ms)),
  ]);
}

async function check(fn: () => Promise<unknown>): Promise<Check> {
  try {
    await within(fn(), 1500);
    return { ok: true };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

/** @param stats undefined until the gateway has connected to MongoDB */
export async function readiness(broker: ServiceBroker, stats: StatsRepo | undefined): Promise<Readiness> {
  // Moleculer's typings do not show the transporter's NATS client.
  const transit = broker.transit as unknown as
    { connected?: boolean; tx?: { client?: { flush?: () => Promise<void> } } } | undefined;
  const [nats, mongo] = await Promise.all([
    check(async () => {
      if (!transit?.connected) throw new Error("transporter not connected");
      // A round trip to the NATS server (nats.js `flush` is a PING/PONG).
      if (typeof transit.tx?.client?.flush === "function") await transit.tx.client.flush();
    }),
    check(async () => {
      if (!stats) throw new Error("not connected");
      await stats.ping();
    }),
  ]);
  const sessionNodes = [
    ...new Set(
      broker.registry
        .getServiceList({ onlyAvailable: true, skipInternal: true })
        .filter((s: { name: string }) => s.name === "session")
        .map((s) => (s as unknown as { nodeID: string }).nodeID),
    ),
  ];
  const workers = workersCheck(broker, sessionNodes);
  return { ready: nats.ok && mongo.ok && workers.ok, checks: { nats, mongo, workers } };
}

/** The `session` nodes that hold a lease, as this node's placement mirror sees them (a draining one
 * counts: it still serves what it holds). */
function workersCheck(broker: ServiceBroker, sessionNodes: string[]): Check {
  const mirror = mirrorOf(broker);
  if (!mirror?.nodesKnown) return { ok: sessionNodes.length > 0, nodes: sessionNodes };
  const leased = sessionNodes.filter((n) => mirror.isLive(n));
  if (leased.length > 0) return { ok: true, nodes: leased };
  const error =
    sessionNodes.length === 0
      ? "no node runs the session service"
      : `no worker holds a current lease (${sessionNodes.join(", ")} run the session service without one)`;
  return { ok: false, error, nodes: [] };
}
