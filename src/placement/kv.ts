// The placement layer of one broker: its NATS connection for JetStream KV, the placement table, the
// `nodes` bucket and the local mirror of both. Every broker has one (started by the Placement
// middleware of moleculer.config.ts), because every caller routes through the WorkspaceShard strategy;
// several brokers in one process (tests) each find their own through `placementOf(broker)`.
import { connect, nanos, type KV, type NatsConnection } from "nats";
import type { ServiceBroker } from "moleculer";
import { natsConnectionOptions } from "../nats-options.ts";
import { batchNatsWrites } from "../nats-write-batching.ts";
import { bucketName, type Config } from "../config.ts";
import { PlacementMirror } from "./mirror.ts";
import { PlacementTable } from "./placement-table.ts";
import { retry } from "../retry.ts";
import { isStreamNotFound } from "./stream-lost.ts";
import { bucketKeys } from "./bucket-keys.ts";

/** A bucket as this node opens it, and how to create it again. */
interface Bucket {
  name: string;
  kv: KV;
  open: () => Promise<KV>;
}

export class ClusterPlacement {
  /** A re-creation of lost buckets under way. */
  private recreating?: Promise<void>;

  private constructor(
    readonly nc: NatsConnection,
    readonly table: PlacementTable,
    readonly nodesKv: KV,
    readonly mirror: PlacementMirror,
    /** How long this node's lease may count on its key staying in the `nodes` bucket: LEASE_TTL_MS, or
     * the bucket's own TTL where that is shorter (see nodesBucketTtl). */
    readonly leaseTtlMs: number,
    private readonly buckets: Bucket[],
    private readonly logger?: { warn(...a: unknown[]): void },
  ) {}

  /**
   * Creates again the buckets whose streams JetStream lost under this running node (its storage gone,
   * a stream deleted), with the settings they were opened with: the handles this node holds work again
   * (a write to a bucket is a publish to its subjects). Every lease went with the `nodes` bucket, so
   * every worker fences itself and leases again in a new term; the records went with the `placement`
   * bucket, and a new term sweeps the workspaces the table no longer names (reconciler.ts). Concurrent
   * calls share one run; nodes doing it at once race harmlessly (openBucket).
   */
  recreateLost(): Promise<void> {
    this.recreating ??= (async () => {
      for (const b of this.buckets) {
        const lost = await b.kv.status().then(
          () => false,
          (err: unknown) => isStreamNotFound(err),
        );
        if (!lost) continue;
        await openBucket(b.open);
        this.logger?.warn(`JetStream lost the ${b.name} bucket: created it again`);
        // The watch's consumer would wait on the new bucket for revisions past the old ones.
        if (b.name === "placement") void this.mirror.rewatch(b.kv);
      }
    })()
      .catch((err: Error) =>
        this.logger?.warn(`Creating lost placement buckets again failed: ${err.message}`),
      )
      .finally(() => (this.recreating = undefined));
    return this.recreating;
  }

  static async connect(cfg: Config, logger?: { warn(...a: unknown[]): void }): Promise<ClusterPlacement> {
    batchNatsWrites();
    const nc = await connect({
      ...natsConnectionOptions(cfg),
      name: `${cfg.nodeId}/placement`,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      waitOnFirstConnect: true,
    });
    const js = nc.jetstream();
    let placement: ClusterPlacement;
    let placementKv: KV;
    try {
      const openPlacement = () => js.views.kv(bucketName(cfg, "placement"), { history: 1 });
      const openNodes = () => js.views.kv(bucketName(cfg, "nodes"), { history: 1, ttl: cfg.leaseTtlMs });
      placementKv = await openBucket(openPlacement);
      const nodesKv = await openBucket(openNodes);
      const bucketTtlMs = await nodesBucketTtl(nc, nodesKv, cfg.leaseTtlMs, logger);
      const mirror = new PlacementMirror();
      const leaseTtlMs = Math.min(cfg.leaseTtlMs, bucketTtlMs);
      const buckets: Bucket[] = [
        { name: "placement", kv: placementKv, open: openPlacement },
        { name: "nodes", kv: nodesKv, open: openNodes },
      ];
      placement = new ClusterPlacement(
        nc,
        new PlacementTable(placementKv),
        nodesKv,
        mirror,
        leaseTtlMs,
        buckets,
        logger,
      );
      const p = placement;
      mirror.onBucketLost = () => void p.recreateLost();
      const nodes = { kv: nodesKv, keys: bucketKeys(await nc.jetstreamManager(), bucketName(cfg, "nodes")) };
      await mirror.start(placementKv, nodes, Math.max(100, Math.min(cfg.leaseRenewMs, 1000)), bucketTtlMs);
    } catch (err) {
      // A node that cannot take part leaves no connection behind.
      await nc.close().catch(() => undefined);
      throw err;
    }
    const { mirror } = placement;
    // After a reconnect (NATS restarted) the ordered consumer behind the watch may be gone: rebuild it.
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === "reconnect") {
          logger?.warn("NATS reconnected: rebuilding the placement watch");
          void mirror.rewatch(placementKv, (err, attempt) =>
            logger?.warn(`Placement watch not rebuilt yet (attempt ${attempt}): ${err.message}`),
          );
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

/**
 * The TTL the `nodes` bucket keeps keys for. The bucket keeps the TTL it was created with (by the first
 * node, under the LEASE_TTL_MS of then), and a lease is safe only if its node fences itself before the
 * server drops its key: a node counting on a longer TTL than the bucket's would run on beside the
 * node that claimed its workspaces. A bucket keeping keys shorter than LEASE_TTL_MS (or for ever) is
 * raised to it (nodes started before go on fencing themselves sooner: safe); one keeping them longer is
 * left (lowering it under running nodes is not safe), this node fences itself at LEASE_TTL_MS, and the
 * others see it gone only at the bucket's TTL: a warning says how to lower it.
 */
export async function nodesBucketTtl(
  nc: NatsConnection,
  kv: KV,
  wantMs: number,
  logger?: { warn(...a: unknown[]): void },
): Promise<number> {
  const status = await kv.status();
  const stream = status.streamInfo.config.name;
  if (status.ttl > wantMs) {
    logger?.warn(
      `The nodes bucket (stream ${stream}) keeps keys ${status.ttl} ms, longer than LEASE_TTL_MS ${wantMs} ms: ` +
        `a dead node is noticed only after ${status.ttl} ms. Delete the stream while no node runs to lower it`,
    );
    return status.ttl;
  }
  if (status.ttl === wantMs) return wantMs;
  try {
    const jsm = await nc.jetstreamManager();
    await jsm.streams.update(stream, { max_age: nanos(wantMs) });
  } catch (err) {
    const why = (err as Error).message;
    // Keys kept for ever: a dead node's lease never lapses, so nobody would ever take its workspaces.
    if (status.ttl === 0)
      throw new Error(
        `The nodes bucket (stream ${stream}) keeps keys for ever and could not be given LEASE_TTL_MS ` +
          `${wantMs} ms (${why}): a dead node would never be noticed. Let this node update the stream, ` +
          `or delete it while no node runs`,
        { cause: err },
      );
    // Not allowed to change it (NATS permissions): the node fences itself at the bucket's TTL.
    logger?.warn(
      `The nodes bucket (stream ${stream}) keeps keys ${status.ttl} ms and could not be ` +
        `raised to LEASE_TTL_MS ${wantMs} ms (${why})`,
    );
    return status.ttl;
  }
  // A stream update writes the whole configuration as read before it: a node raising it at the same
  // time to a TTL of its own may have landed after this one. The TTL the bucket has now, if lower, is
  // the one to fence at.
  const now = (await kv.status()).ttl;
  const ttl = now > 0 ? Math.min(wantMs, now) : wantMs;
  logger?.warn(`The nodes bucket (stream ${stream}) kept keys ${status.ttl || "for ever"} ms; now ${ttl} ms`);
  return ttl;
}

/**
 * Opens (creating when missing) a KV bucket. Nodes starting together race to create it: the client
 * looks the stream up, finds none, and adds it, and a loser can be refused ("subjects overlap with an
 * existing stream") although the bucket it wants now exists; the next look-up finds it.
 */
export function openBucket(open: () => Promise<KV>, attempts = 5): Promise<KV> {
  return retry(open, { attempts, delayMs: (attempt) => 50 * attempt });
}

// Kept on the broker object under registry-wide symbols, not in a module-level map: a second copy of
// this module (a CJS and an ESM load of one file) must find the same placement layer.
const PLACEMENT = Symbol.for("switchboard.placement");
const MIRROR = Symbol.for("switchboard.placement.mirror");

type Holder = { [PLACEMENT]?: ClusterPlacement; [MIRROR]?: PlacementMirror };

export function attachPlacement(broker: ServiceBroker, placement: ClusterPlacement): void {
  (broker as unknown as Holder)[PLACEMENT] = placement;
  (broker as unknown as Holder)[MIRROR] = placement.mirror;
}

/** Gives a broker a mirror without a NATS connection (benchmarks, unit tests of the strategy). */
export function attachMirror(broker: object, mirror: PlacementMirror): void {
  (broker as Holder)[MIRROR] = mirror;
}

export function detachPlacement(broker: ServiceBroker): ClusterPlacement | undefined {
  const holder = broker as unknown as Holder;
  const p = holder[PLACEMENT];
  delete holder[PLACEMENT];
  delete holder[MIRROR];
  return p;
}

/** The placement layer of a broker (undefined before it started or without NATS). */
export function placementOf(broker: object): ClusterPlacement | undefined {
  return (broker as Holder)[PLACEMENT];
}

export function mirrorOf(broker: object): PlacementMirror | undefined {
  return (broker as Holder)[MIRROR];
}
