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

export interface MirrorEvents {
  /** A workspace's record changed (null: deleted). */
  placement: [workspaceId: string, entry: PlacementEntry | null, previous: PlacementEntry | undefined];
  /** The set of live nodes (or one's draining flag) changed. */
  nodes: [live: ReadonlyMap<string, NodeRecord>];
}

/** A timed poll runs this long after the expected expiry (the server removes the key on its timer). */
const EXPIRY_POLL_LAG_MS = 20;
/** …and never sooner than this after the previous one (a server that expires late is polled again). */
const EXPIRY_POLL_MIN_MS = 50;

export class PlacementMirror extends EventEmitter<MirrorEvents> {
  private readonly records = new Map<string, PlacementEntry>();
  private readonly workspacesPerNode = new Map<string, number>();
  private live = new Map<string, NodeRecord>();
  private watcher?: QueuedIterator<KvEntry>;
  private pollTimer?: NodeJS.Timeout;
  private expiryTimer?: NodeJS.Timeout;
  /** Polls started / the latest one applied: an older poll that answers late is not applied. */
  private pollsStarted = 0;
  private pollApplied = 0;
  /** The `nodes` bucket's TTL (0: no timed poll). */
  private leaseTtlMs = 0;
  private stopped = false;
  private rewatching = false;
  /** True once the watch has delivered every record present when it started. */
  synced = false;
  /** True once the live nodes were read at least once. */
  nodesKnown = false;

  constructor() {
    super();
    this.setMaxListeners(50);
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

  /** Starts the placement watch and the liveness poll; resolves once both have been read once.
   * `leaseTtlMs`: the `nodes` bucket's TTL, for the poll timed at the next possible expiry. */
  async start(placementKv: KV, nodesKv: KV, pollMs: number, leaseTtlMs = 0): Promise<void> {
    this.stopped = false;
    this.leaseTtlMs = leaseTtlMs;
    await Promise.all([this.watch(placementKv), this.pollNodes(nodesKv)]);
    const loop = async () => {
      if (this.stopped) return;
      await this.pollNodes(nodesKv).catch(() => undefined);
      if (!this.stopped) this.pollTimer = setTimeout(loop, pollMs);
    };
    this.pollTimer = setTimeout(loop, pollMs);
  }

  /** (Re)starts the watch; the first values rebuild the map (records deleted meanwhile disappear). */
  async watch(kv: KV): Promise<void> {
    this.watcher?.stop();
    const seen = new Set<string>();
    let initialized = false;
    let resolveInit!: () => void;
    const init = new Promise<void>((r) => (resolveInit = r));
    const watcher = await kv.watch({
      initializedFn: () => {
        initialized = true;
        for (const ws of [...this.records.keys()]) if (!seen.has(ws)) this.apply(ws, null);
        this.synced = true;
        resolveInit();
      },
    });
    this.watcher = watcher;
    void (async () => {
      try {
        for await (const e of watcher) {
          if (!initialized) seen.add(e.key);
          const entry = decodePlacement(e);
          if (!entry) this.apply(e.key, null);
          else {
            // A restarted watch re-delivers current values; a lower revision than ours is stale.
            const cur = this.records.get(e.key);
            if (!initialized && cur && cur.revision > entry.revision) continue;
            this.apply(e.key, entry);
          }
        }
      } catch {
        // The watch ended with an error (NATS gone for too long): rebuild it below.
      }
      if (!this.stopped && this.watcher === watcher) void this.rewatch(kv);
    })();
    await init;
  }

  /**
   * Rebuilds the watch until it stands (NATS reconnected, or the watch ended): right after a NATS
   * restart JetStream may not serve the bucket yet, and a mirror left without a watch would never see
   * a placement change again (no adoption of handed-off workspaces, no fencing on lost ones).
   */
  async rewatch(kv: KV, onError?: (err: Error, attempt: number) => void): Promise<void> {
    if (this.rewatching) return;
    this.rewatching = true;
    try {
      await sleep(250);
      await retry(
        async () => {
          if (!this.stopped) await this.watch(kv);
        },
        {
          attempts: Infinity,
          delayMs: (attempt) => Math.min(250 * (attempt + 1), 2000),
          shouldRetry: (err, attempt) => {
            onError?.(err as Error, attempt);
            return !this.stopped;
          },
        },
      ).catch(() => undefined); // thrown only once the mirror has stopped
    } finally {
      this.rewatching = false;
    }
  }

  async pollNodes(kv: KV): Promise<void> {
    const poll = ++this.pollsStarted;
    const next = new Map<string, NodeRecord>();
    const keys: string[] = [];
    let oldest = Infinity;
    for await (const k of await kv.keys()) keys.push(k);
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
    this.armExpiryPoll(kv, oldest);
  }

  /** Polls again when the oldest lease seen would expire, unless a poll before then re-arms it. The
   * server's clock stamps `created`: a skewed local clock polls early (and re-arms) or late by the skew. */
  private armExpiryPoll(kv: KV, oldestCreated: number): void {
    clearTimeout(this.expiryTimer);
    if (this.stopped || this.leaseTtlMs <= 0 || !Number.isFinite(oldestCreated)) return;
    const delay = Math.max(
      EXPIRY_POLL_MIN_MS,
      oldestCreated + this.leaseTtlMs + EXPIRY_POLL_LAG_MS - Date.now(),
    );
    this.expiryTimer = setTimeout(() => void this.pollNodes(kv).catch(() => undefined), delay);
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
