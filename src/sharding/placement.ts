// The placement layer of one broker: its NATS connection for JetStream KV, the placement table, the
// `nodes` bucket and the local mirror of both. Every broker has one (started by the Placement
// middleware of moleculer.config.ts), because every caller routes through the WorkspaceShard strategy;
// several brokers in one process (tests) each find their own through `placementOf(broker)`.
import { connect, type KV, type NatsConnection } from "nats";
import type { ServiceBroker } from "moleculer";
import { bucketName, type Config } from "../config.ts";
import { PlacementMirror } from "./mirror.ts";
import { PlacementTable } from "./placement-table.ts";

export class ClusterPlacement {
  private constructor(
    readonly nc: NatsConnection,
    readonly table: PlacementTable,
    readonly nodesKv: KV,
    readonly mirror: PlacementMirror,
  ) {}

  static async connect(cfg: Config, logger?: { warn(...a: unknown[]): void }): Promise<ClusterPlacement> {
    const nc = await connect({
      servers: cfg.natsUrl,
      name: `${cfg.nodeId}/placement`,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      waitOnFirstConnect: true,
    });
    const js = nc.jetstream();
    const placementKv = await js.views.kv(bucketName(cfg, "placement"), { history: 1 });
    const nodesKv = await js.views.kv(bucketName(cfg, "nodes"), { history: 1, ttl: cfg.leaseTtlMs });
    const mirror = new PlacementMirror();
    const placement = new ClusterPlacement(nc, new PlacementTable(placementKv), nodesKv, mirror);
    await mirror.start(placementKv, nodesKv, Math.max(100, Math.min(cfg.leaseRenewMs, 1000)));
    // After a reconnect (NATS restarted) the ordered consumer behind the watch may be gone: rebuild it.
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === "reconnect") {
          logger?.warn("NATS reconnected: rebuilding the placement watch");
          void mirror.watch(placementKv).catch(() => undefined);
        }
      }
    })().catch(() => undefined);
    return placement;
  }

  async close(): Promise<void> {
    this.mirror.stop();
    await this.nc.close().catch(() => undefined);
  }
}

const byBroker = new WeakMap<object, ClusterPlacement>();
const mirrors = new WeakMap<object, PlacementMirror>();

export function attachPlacement(broker: ServiceBroker, placement: ClusterPlacement): void {
  byBroker.set(broker, placement);
  mirrors.set(broker, placement.mirror);
}

/** Gives a broker a mirror without a NATS connection (benchmarks, unit tests of the strategy). */
export function attachMirror(broker: object, mirror: PlacementMirror): void {
  mirrors.set(broker, mirror);
}

export function detachPlacement(broker: ServiceBroker): ClusterPlacement | undefined {
  const p = byBroker.get(broker);
  byBroker.delete(broker);
  mirrors.delete(broker);
  return p;
}

/** The placement layer of a broker (undefined before it started or without NATS). */
export function placementOf(broker: object): ClusterPlacement | undefined {
  return byBroker.get(broker);
}

export function mirrorOf(broker: object): PlacementMirror | undefined {
  return mirrors.get(broker);
}
