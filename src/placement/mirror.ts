// Each broker's local copy of the placement table and of the live nodes, for synchronous reads on the
// hot path (the strategy's select(), ownership checks). The table is fed by a KV watch; liveness keys
// are polled, because in nats-server 2.9 a key that expires by TTL produces no watch event. Besides the
// periodic poll, one is timed for the moment the oldest lease seen can expire (its server timestamp +
// TTL), so a dead node's workspaces are claimed within milliseconds of its expiry, not a poll later.
import { EventEmitter } from "node:events";
import type { KV, KvEntry, QueuedIterator } from "nats";
import type { PlacementNode } from "./hrw.ts";
import type { NodeRecord } from "./liveness.ts";
import { decodePlacement, type PlacementEntry } from "./placement-table.ts";
import { setTimeout as sleep } from "node:timers/promises";
import { retry } from "../retry.ts";
import { isStreamNotFound } from "./stream-lost.ts";
import type { KeyLister } from "./bucket-keys.ts";

export interface MirrorEvents {
  /** A workspace's record changed (null: deleted). */
  placement: [workspaceId: string, entry: PlacementEntry | null, previous: PlacementEntry | undefined];
  /** The set of live nodes (or one's draining flag) changed. */
  nodes: [live: ReadonlyMap<string, NodeRecord>];
}

/** The `nodes` bucket as the mirror polls it: its keys listed without kv.keys() (bucket-keys.ts). */
export interface NodesSource {
  kv: KV;
  keys: KeyLister;
}

export interface PlacementMirrorOptions {
  /** A watch that delivers nothing for this long before its first read is complete is given up and
   * built again. Longer than nats.js takes to recreate a lost consumer (two missed 5 s heartbeats).
   * @default 20000 */
  initIdleMs?: number;
}

/** A timed poll runs this long after the expected expiry (the server removes the key on its timer). */
const EXPIRY_POLL_LAG_MS = 20;
/** …and never sooner than this after the previous one (a server that expires late is polled again). */
const EXPIRY_POLL_MIN_MS = 50;

/** Every this many polls of the nodes, the mirror checks that the placement bucket is the one it
 * watches (a few seconds). */
const BUCKET_CHECK_EVERY = 10;

export class PlacementMirror extends EventEmitter<MirrorEvents> {
  private readonly records = new Map<string, PlacementEntry>();
  private readonly workspacesPerNode = new Map<string, number>();
  private live = new Map<string, NodeRecord>();
  private watcher?: QueuedIterator<KvEntry>;
  private pollTimer?: NodeJS.Timeout;
  private expiryTimer?: NodeJS.Timeout;
  private nodes?: NodesSource;
  /** Polls started / the latest one applied: an older poll that answers late is not applied. */
  private pollsStarted = 0;
  private pollApplied = 0;
  /** The `nodes` bucket's TTL (0: no timed poll). */
  private leaseTtlMs = 0;
  private stopped = false;
  private rewatching = false;
  /** A rebuild was asked for since the running one started. */
  private rewatchWanted = false;
  /** When the placement bucket's stream was created, as the last watch found it. */
  private bucketCreated?: string;
  private readonly initIdleMs: number;
  /** True once the watch has delivered every record present when it started. */
  synced = false;
  /** True once the live nodes were read at least once. */
  nodesKnown = false;
  /** How many times the placement bucket was found made again (JetStream lost it) and the records held
   * here dropped: every workspace then wants placing again (the reconciler sweeps them all). */
  bucketResets = 0;

  constructor(options: PlacementMirrorOptions = {}) {
    super();
    this.setMaxListeners(50);
    this.initIdleMs = options.initIdleMs ?? 20000;
  }

  // ---- synchronous reads ----

  /** Recorded owner of a workspace, if placed. */
  owner(workspaceId: string): string | undefined {
    return this.records.get(workspaceId)?.node;
  }

  get(workspaceId: string): PlacementEntry | undefined {
    return this.records.get(workspaceId);
  }

  entries(): IterableIterator<PlacementEntry> {
    return this.records.values();
  }

  get size(): number {
    return this.records.size;
  }

  /** Workspaces recorded per node (the loads of bounded-load placement). */
  loads(): ReadonlyMap<string, number> {
    return this.workspacesPerNode;
  }

  liveNodes(): ReadonlyMap<string, NodeRecord> {
    return this.live;
  }

  isLive(nodeId: string): boolean {
    return this.live.has(nodeId);
  }

  isDraining(nodeId: string): boolean {
    return this.live.get(nodeId)?.draining === true;
  }

  /** Live worker nodes (hosting `session`) that take new workspaces, weighted by capacity: the
   * candidates of bounded-load placement, the same on every node that reads the same mirror. A node
   * at its capacity (as its last lease renewal said) takes none while another has room; with every
   * node full, all stay candidates and the owner fails what it cannot run (`capacity_exhausted`). */
  workers(includeDraining = false): PlacementNode[] {
    const out: PlacementNode[] = [];
    const full: PlacementNode[] = [];
    for (const n of this.live.values()) {
      if (!n.services.includes("session") || (!includeDraining && n.draining)) continue;
      const node = { id: n.nodeId, weight: Math.max(1, n.capacity) };
      (n.capacity > 0 && n.sessions >= n.capacity ? full : out).push(node);
    }
    return out.length > 0 ? out : full;
  }

  // ---- feeding ----

  /** Applies one KV entry of the placement bucket (also used by writers to see their own claims at once). */
  apply(workspaceId: string, entry: PlacementEntry | null): void {
    const previous = this.records.get(workspaceId);
    if (entry && previous && previous.revision >= entry.revision) return;
    if (previous)
      this.workspacesPerNode.set(previous.node, (this.workspacesPerNode.get(previous.node) ?? 1) - 1);
    if (entry) {
      this.records.set(workspaceId, entry);
      this.workspacesPerNode.set(entry.node, (this.workspacesPerNode.get(entry.node) ?? 0) + 1);
    } else this.records.delete(workspaceId);
    if (previous?.node !== entry?.node || previous?.epoch !== entry?.epoch)
      this.emit("placement", workspaceId, entry, previous);
  }

  /** Replaces the live node set (from a poll of the `nodes` bucket). */
  setLiveNodes(next: Map<string, NodeRecord>): void {
    const before = this.live;
    this.live = next;
    this.nodesKnown = true;
    let changed = before.size !== next.size;
    if (!changed) {
      for (const [id, rec] of next) {
        const old = before.get(id);
        if (!old || old.draining !== rec.draining || old.capacity !== rec.capacity) {
          changed = true;
          break;
        }
      }
    }
    if (changed) this.emit("nodes", next);
  }

  /** Told when a read finds the stream of the placement or the `nodes` bucket gone (JetStream lost
   * it): the placement layer creates it again (kv.ts). */
  onBucketLost: () => void = () => undefined;

  /** Starts the placement watch and the liveness poll; resolves once both have been read once.
   * `leaseTtlMs`: the `nodes` bucket's TTL, for the poll timed at the next possible expiry. */
  async start(placementKv: KV, nodes: NodesSource, pollMs: number, leaseTtlMs = 0): Promise<void> {
    this.stopped = false;
    this.leaseTtlMs = leaseTtlMs;
    this.nodes = nodes;
    try {
      await Promise.all([this.watch(placementKv), this.pollNodes()]);
    } catch (err) {
      // Nothing of a start that failed runs on (a watch's end would start rebuilding it for ever).
      this.stop();
      throw err;
    }
    let polls = 0;
    const loop = async () => {
      if (this.stopped) return;
      await this.pollNodes().catch((err) => {
        if (isStreamNotFound(err)) this.onBucketLost();
      });
      if (++polls % BUCKET_CHECK_EVERY === 0) await this.checkBucket(placementKv);
      if (!this.stopped) this.pollTimer = setTimeout(loop, pollMs);
    };
    this.pollTimer = setTimeout(loop, pollMs);
  }

  /**
   * Whether the placement bucket is still the one the watch reads: a bucket JetStream lost and that was
   * made again (here or by another node) restarts its revisions, and the watch's consumer, recreated
   * on it, waits for revisions past the old ones, so nothing would ever tell this mirror. Rebuilt then
   * (the rebuild drops what the old bucket held).
   */
  private async checkBucket(kv: KV): Promise<void> {
    try {
      const created = (await kv.status()).streamInfo.created;
      if (this.bucketCreated !== undefined && created !== this.bucketCreated) void this.rewatch(kv);
    } catch (err) {
      if (isStreamNotFound(err)) this.onBucketLost();
    }
  }

  /**
   * (Re)starts the watch; resolves once everything the bucket held when it started has been applied,
   * and rejects if the watch ends (or delivers nothing for `initIdleMs`) before that, so the caller
   * (start, rewatch's retry) can build another. Records whose keys that first read did not bring are
   * then read again, and removed if gone (deleted while no watch stood, without a marker).
   */
  async watch(kv: KV): Promise<void> {
    const previous = this.watcher;
    this.watcher = undefined; // its loop, ending now, must not start a rebuild of its own
    previous?.stop();
    const stream = (await kv.status()).streamInfo;
    if (this.bucketCreated !== undefined && stream.created !== this.bucketCreated) {
      // The bucket was deleted and made again: its revisions start over, so nothing held here is current.
      this.bucketResets++;
      for (const ws of [...this.records.keys()]) this.apply(ws, null);
    }
    this.bucketCreated = stream.created;
    // Every record present when the watch starts has a revision up to this one.
    const startRevision = stream.state.last_seq;

    const seen = new Set<string>();
    let applied = 0;
    /** Entries to apply before the first read is complete (Infinity: nats.js has not said yet). */
    let initAfter = Infinity;
    let initialized = false;
    let returned = false;
    let resolveInit!: () => void;
    let rejectInit!: (err: Error) => void;
    const init = new Promise<void>((resolve, reject) => {
      resolveInit = resolve;
      rejectInit = reject;
    });
    const finishInit = () => {
      if (initialized) return;
      initialized = true;
      clearTimeout(idle);
      this.synced = true;
      resolveInit();
      void this.removeGone(kv, this.unseenUpTo(seen, startRevision));
      seen.clear();
    };
    let idle: NodeJS.Timeout | undefined;
    const armIdle = () => {
      if (idle) idle.refresh();
      else
        idle = setTimeout(
          () => created.stop(new Error(`no entry for ${this.initIdleMs} ms`)),
          this.initIdleMs,
        );
    };

    const created = await kv.watch({
      // nats.js calls this either from the iterator, once the loop below has applied every entry
      // queued before it, or synchronously inside kv.watch() when the entries it counted arrived before
      // the consumer's creation was confirmed: none of them applied yet. So it only marks the point.
      initializedFn: () => {
        if (returned) {
          initAfter = applied;
          finishInit();
        } else initAfter = -1; // counted below, once kv.watch() has returned
      },
    });
    returned = true;
    this.watcher = created;
    if (initAfter === -1) {
      initAfter = created.getReceived();
      if (initAfter === 0) finishInit();
    }
    if (!initialized) armIdle();

    void (async () => {
      let failure: unknown;
      try {
        for await (const e of created) {
          if (!initialized) seen.add(e.key);
          // A rebuilt watch re-delivers current values; an entry older than what is held is stale.
          const cur = this.records.get(e.key);
          if (!cur || cur.revision < e.revision) this.apply(e.key, decodePlacement(e));
          applied++;
          if (!initialized) {
            if (applied >= initAfter) finishInit();
            else armIdle();
          }
        }
      } catch (err) {
        failure = err; // NATS gone for too long, the consumer not recreated, no entry for initIdleMs
      }
      clearTimeout(idle);
      if (!initialized) {
        // Whoever awaits this watch builds the next one; a rebuild from here would find rewatch busy.
        const why = failure instanceof Error ? `: ${failure.message}` : "";
        rejectInit(new Error(`The placement watch ended before its first read${why}`, { cause: failure }));
      } else if (!this.stopped && this.watcher === created) void this.rewatch(kv);
    })();
    await init;
  }

  /** Records the first read did not bring, as held now; not those newer than the watch (a writer's own
   * claim, applied at once, which the watch brings later). */
  private unseenUpTo(seen: ReadonlySet<string>, revision: number): PlacementEntry[] {
    return [...this.records.values()].filter((r) => !seen.has(r.workspaceId) && r.revision <= revision);
  }

  /**
   * Removes the records whose keys are gone from the bucket. A key the first read did not bring may
   * still be there: one rewritten during that read comes after nats.js calls the read complete (its
   * value of then left the stream), and no later point of the watch tells it from a key deleted
   * without a marker (under writes, the consumer's pending count reaches 0 before it). So each is read
   * (rarely any: a deletion leaves a marker, which the watch brings). A record that changed meanwhile
   * is the watch's; one not read (NATS gone again) waits for the next rebuild.
   */
  private async removeGone(kv: KV, unseen: PlacementEntry[]): Promise<void> {
    for (let i = 0; i < unseen.length && !this.stopped; i += 64) {
      await Promise.all(
        unseen.slice(i, i + 64).map(async (held) => {
          const now = await kv.get(held.workspaceId).catch(() => undefined);
          if (now === undefined || this.records.get(held.workspaceId) !== held) return;
          this.apply(held.workspaceId, now ? decodePlacement(now) : null);
        }),
      );
    }
  }

  /**
   * Rebuilds the watch until it stands (NATS reconnected, or the watch ended): right after a NATS
   * restart JetStream may not serve the bucket yet, and a mirror left without a watch would never see
   * a placement change again (no adoption of handed-off workspaces, no fencing on lost ones). A call
   * while a rebuild runs asks for one more after it (the watch it builds may already be gone).
   */
  async rewatch(kv: KV, onError?: (err: Error, attempt: number) => void): Promise<void> {
    this.rewatchWanted = true;
    if (this.rewatching) return;
    this.rewatching = true;
    try {
      while (this.rewatchWanted && !this.stopped) {
        await sleep(250);
        await retry(
          async () => {
            this.rewatchWanted = false; // asked before this try: this try answers it
            if (!this.stopped) await this.watch(kv);
          },
          {
            attempts: Infinity,
            delayMs: (attempt) => Math.min(250 * (attempt + 1), 2000),
            shouldRetry: (err, attempt) => {
              if (isStreamNotFound(err)) this.onBucketLost();
              onError?.(err as Error, attempt);
              return !this.stopped;
            },
          },
        ).catch(() => undefined); // thrown only once the mirror has stopped
      }
    } finally {
      this.rewatching = false;
    }
  }

  /** Reads the live nodes now (no-op before start()). */
  async pollNodes(): Promise<void> {
    const nodes = this.nodes;
    if (!nodes) return;
    const { kv } = nodes;
    const poll = ++this.pollsStarted;
    const next = new Map<string, NodeRecord>();
    let oldest = Infinity;
    const keys = await nodes.keys();
    await Promise.all(
      keys.map(async (k) => {
        const e = await kv.get(k);
        if (e && e.operation === "PUT" && e.value.length > 0) {
          next.set(k, e.json<NodeRecord>());
          oldest = Math.min(oldest, e.created.getTime());
        }
      }),
    );
    if (poll < this.pollApplied) return;
    this.pollApplied = poll;
    this.setLiveNodes(next);
    this.armExpiryPoll(oldest);
  }

  /** Polls again when the oldest lease seen would expire, unless a poll before then re-arms it. The
   * server's clock stamps `created`: a skewed local clock polls early (and re-arms) or late by the skew. */
  private armExpiryPoll(oldestCreated: number): void {
    clearTimeout(this.expiryTimer);
    if (this.stopped || this.leaseTtlMs <= 0 || !Number.isFinite(oldestCreated)) return;
    const delay = Math.max(
      EXPIRY_POLL_MIN_MS,
      oldestCreated + this.leaseTtlMs + EXPIRY_POLL_LAG_MS - Date.now(),
    );
    this.expiryTimer = setTimeout(() => void this.pollNodes().catch(() => undefined), delay);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.pollTimer);
    clearTimeout(this.expiryTimer);
    const w = this.watcher;
    this.watcher = undefined;
    w?.stop();
  }
}
