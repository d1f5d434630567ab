// GET /metrics: Prometheus text of
//  - this gateway's Moleculer metric registry (moleculer's own Prometheus reporter formats it), and
//  - Switchboard's metrics: every `switchboard.*` metric any node registers in its broker registry
//    (collected with `$node.metrics`, labelled by node: failovers, start-queue length, … as the
//    session/placement layers expose them), plus gauges the gateway computes from MongoDB (sessions by
//    status per node, placements per node) and its own counter of QR codes served.
import { MetricReporters, type ServiceBroker } from "moleculer";
import { placementOf } from "../placement/kv.ts";
import type { StatsRepo } from "../store/stats-repo.ts";

/** Names Switchboard layers register in their broker's metric registry; the gateway exports every
 * `switchboard.*` metric of every node, labelled with `nodeID`. */
export const METRICS = {
  /** Counter (gateway): QR codes answered by `GET /api/v1/accounts/:accountId/qr`, label `format`. */
  qrServed: "switchboard.qr.served",
  /** Gauge (computed from MongoDB): accounts by `node` and `status`. */
  sessions: "switchboard.sessions",
  /** Gauge: workspaces placed on `node`, from this broker's mirror of the placement table (from the
   * account records in MongoDB when the broker has no placement layer). */
  placements: "switchboard.placements",
  /** Counter (gateway): worker nodes lost without a graceful stop (each fails its workspaces over). */
  failovers: "switchboard.failovers",
  /** Gauge: engine starts waiting per node. A worker's own gauge of this name wins; otherwise the
   * gateway counts the node's `initializing` accounts (queued or launching) from MongoDB. */
  startQueue: "switchboard.start_queue.length",
  /** Gauge (worker): sends waiting for their account's slot (SEND_MIN_GAP_MS) on the node. */
  sendQueue: "switchboard.send_queue.depth",
} as const;

export interface Sample {
  labels: Record<string, string | number>;
  value: number;
}

export interface Family {
  name: string;
  type: "counter" | "gauge";
  help: string;
  samples: Sample[];
}

function promName(name: string): string {
  return name.replace(/[.-]/g, "_");
}

function escapeLabel(v: string | number): string {
  return String(v).replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

export function formatFamilies(families: Family[]): string {
  const out: string[] = [];
  for (const f of families) {
    const name = promName(f.name);
    out.push(`# HELP ${name} ${f.help.replace(/\n/g, " ")}`, `# TYPE ${name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels)
        .map(([k, v]) => `${promName(k)}="${escapeLabel(v)}"`)
        .join(",");
      out.push(`${name}${labels ? `{${labels}}` : ""} ${Number.isFinite(s.value) ? s.value : "NaN"}`);
    }
    out.push("");
  }
  return out.join("\n");
}

/** This broker's registry as Prometheus text, without `switchboard.*` (exported cluster-wide below). */
export function registryText(broker: ServiceBroker): string {
  // The reporter's formatting half is not in Moleculer's typings.
  interface PrometheusFormatter {
    registry: unknown;
    broker: ServiceBroker;
    defaultLabels: Record<string, string>;
    generatePrometheusResponse(): string;
  }
  const Reporter = (MetricReporters as unknown as Record<string, new (opts: object) => PrometheusFormatter>)
    .Prometheus;
  const reporter = new Reporter({ port: 0, excludes: ["switchboard.**"] });
  // Only the formatting half of the reporter: no init(), so no HTTP server of its own.
  reporter.registry = broker.metrics;
  reporter.broker = broker;
  reporter.defaultLabels = { namespace: broker.namespace, nodeID: broker.nodeID };
  return reporter.generatePrometheusResponse();
}

interface MetricObject {
  name: string;
  type: string;
  description?: string;
  values: { labels?: Record<string, string | number>; value: number | null }[];
}

/** Every node's `switchboard.*` metrics, labelled with the node; a node that does not answer in time is
 * skipped (its absence shows as missing series, never as a failed scrape). */
export async function clusterFamilies(broker: ServiceBroker, skip: ReadonlySet<string>): Promise<Family[]> {
  const nodes = broker.registry.nodes
    .list({ onlyAvailable: true, withServices: false })
    .map((n: { id: string }) => n.id);
  const lists = await Promise.all(
    nodes.map(async (nodeID: string) => {
      try {
        const list =
          nodeID === broker.nodeID
            ? (broker.metrics.list({ includes: ["switchboard.**"] }) as unknown as MetricObject[])
            : await broker.call<MetricObject[], object>(
                "$node.metrics",
                { includes: ["switchboard.**"] },
                { nodeID, timeout: 1500 },
              );
        return { nodeID, list };
      } catch {
        return { nodeID, list: [] as MetricObject[] };
      }
    }),
  );
  const byName = new Map<string, Family>();
  for (const { nodeID, list } of lists) {
    for (const m of list) {
      if (skip.has(m.name) || (m.type !== "counter" && m.type !== "gauge")) continue;
      let f = byName.get(m.name);
      if (!f) {
        f = { name: m.name, type: m.type, help: m.description || m.name, samples: [] };
        byName.set(m.name, f);
      }
      for (const v of m.values ?? []) {
        if (v.value == null) continue;
        f.samples.push({ labels: { ...v.labels, nodeID }, value: v.value });
      }
    }
  }
  return [...byName.values()];
}

/** Workspaces per node in this broker's mirror of the placement table; null without a synced mirror. */
export function placementFamily(broker: ServiceBroker): Family | null {
  const mirror = placementOf(broker)?.mirror;
  if (!mirror?.synced) return null;
  const perNode = new Map<string, number>();
  for (const rec of mirror.entries()) perNode.set(rec.node, (perNode.get(rec.node) ?? 0) + 1);
  return {
    name: METRICS.placements,
    type: "gauge",
    help: "Workspaces placed on the node (placement table)",
    samples: [...perNode].map(([node, value]) => ({ labels: { node }, value })),
  };
}

/** Gauges computed from the account records. */
export async function accountFamilies(stats: StatsRepo): Promise<Family[]> {
  const rows = await stats.accountCounts();
  const sessions = new Map<string, Sample>();
  const placements = new Map<string, Set<string>>();
  for (const row of rows) {
    const node = row.node ?? "none";
    const key = `${node}\u0000${row.status}`;
    const s = sessions.get(key) ?? { labels: { node, status: row.status }, value: 0 };
    s.value += row.n;
    sessions.set(key, s);
    if (row.node) {
      if (!placements.has(node)) placements.set(node, new Set());
      placements.get(node)!.add(row.workspaceId);
    }
  }
  const starting = [...sessions.values()].filter(
    (s) => s.labels.status === "initializing" && s.labels.node !== "none",
  );
  return [
    {
      name: METRICS.startQueue,
      type: "gauge",
      help: "Engine starts waiting or launching per node (accounts in initializing)",
      samples: starting.map((s) => ({ labels: { node: s.labels.node }, value: s.value })),
    },
    {
      name: METRICS.sessions,
      type: "gauge",
      help: "Accounts by the node recorded as running them and by status (node=none: never placed)",
      samples: [...sessions.values()],
    },
    {
      name: METRICS.placements,
      type: "gauge",
      help: "Workspaces whose accounts are recorded on the node (account records)",
      samples: [...placements.entries()].map(([node, set]) => ({ labels: { node }, value: set.size })),
    },
  ];
}

/** How long the accounts aggregate of /metrics is reused: a scrape must not scan the accounts each time. */
export const ACCOUNTS_AGGREGATE_TTL_MS = 5000;
const aggregates = new WeakMap<StatsRepo, { at: number; families: ReturnType<typeof accountFamilies> }>();

function cachedAccountFamilies(stats: StatsRepo): ReturnType<typeof accountFamilies> {
  const hit = aggregates.get(stats);
  if (hit && Date.now() - hit.at < ACCOUNTS_AGGREGATE_TTL_MS) return hit.families;
  const families = accountFamilies(stats).catch(() => []);
  aggregates.set(stats, { at: Date.now(), families });
  return families;
}

/** @param stats undefined until the gateway has connected to MongoDB */
export async function gatewayMetricsText(
  broker: ServiceBroker,
  stats: StatsRepo | undefined,
): Promise<string> {
  const computed = stats ? await cachedAccountFamilies(stats) : [];
  // What the nodes register themselves wins over what the gateway computes under the same name.
  const cluster = await clusterFamilies(broker, new Set([METRICS.sessions, METRICS.placements]));
  const fromNodes = new Set(cluster.filter((f) => f.samples.length > 0).map((f) => f.name));
  const placements = placementFamily(broker);
  const families = [
    ...computed.filter((f) => !fromNodes.has(f.name) && !(placements && f.name === placements.name)),
    ...(placements ? [placements] : []),
    ...cluster,
  ];
  return `${registryText(broker)}\n${formatFamilies(families)}`;
}

/** The counters a gateway keeps itself (before its first request). */
export function registerGatewayMetrics(broker: ServiceBroker): void {
  broker.metrics.register({
    type: "counter",
    name: METRICS.qrServed,
    labelNames: ["format"],
    description: "QR codes answered by GET /api/v1/accounts/:accountId/qr",
  });
  broker.metrics.register({
    type: "counter",
    name: METRICS.failovers,
    description:
      "Worker nodes lost without a graceful stop (their workspaces fail over), seen by this gateway",
  });
}
