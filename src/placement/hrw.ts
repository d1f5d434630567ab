// Placement math (DESIGN.md, "Placement and routing" §4): weighted rendezvous (highest-random-weight)
// hashing of a workspace over nodes, with bounded load. Pure and dependency-free, so every process —
// and every language — computes the same answer from the same inputs.
//
// Each (workspace, node) pair gets a pseudo-random u ∈ (0, 1) from a 53-bit hash; its weighted score
// is -w / ln(u) (Schindelhauer & Schomaker's weighted HRW: a node of weight w wins a share w / Σw).
// Adding a node only takes workspaces for which the new node scores highest (never moves one between
// old nodes); removing a node only moves the workspaces it won, each to its runner-up.

/** A candidate owner. */
export interface PlacementNode {
  id: string;
  /** Relative capacity (e.g. SESSION_CAPACITY); ≤ 0 means "takes nothing". @default 1 */
  weight?: number;
}

/** Loads (e.g. workspaces owned) by node id; a missing node counts as 0. */
export type Loads = ReadonlyMap<string, number> | Readonly<Record<string, number>>;

/** Bounded-load factor c: a node whose load reaches ceil(c × its fair share) is skipped. */
export const DEFAULT_LOAD_FACTOR = 1.25;

/** A 64-bit hash of a string as two 32-bit lanes (murmur3-style mixing over UTF-16 code units). */
export type Hash64 = readonly [number, number];

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function lane(s: string, seed: number): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    let k = Math.imul(s.charCodeAt(i), 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  return fmix32(h ^ s.length);
}

/** Deterministic 64-bit hash of a string (two independent murmur3 lanes). */
export function hash64(s: string): Hash64 {
  return [lane(s, 0x9747b28c), lane(s, 0x5bd1e995)];
}

const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;

/** u ∈ (0, 1) for a (workspace, node) pair from their hashes: 53 bits of a two-lane mix. */
export function pairUniform(ws: Hash64, node: Hash64): number {
  let a = ws[0] ^ node[0];
  let b = ws[1] ^ node[1];
  a = fmix32((a + Math.imul(b, 0x9e3779b1)) | 0);
  b = fmix32((b ^ Math.imul(a, 0x7feb352d)) | 0);
  // 21 high bits from a, 32 from b; +0.5 keeps u strictly inside (0, 1) so ln(u) is finite and < 0.
  return ((a >>> 11) * TWO_POW_32 + b + 0.5) / TWO_POW_53;
}

/** Weighted HRW score of a pair; higher wins. Weight ≤ 0 scores -Infinity. */
export function hrwScore(ws: Hash64, node: Hash64, weight = 1): number {
  if (!(weight > 0)) return -Infinity;
  return -weight / Math.log(pairUniform(ws, node));
}

/** Normalises a shard key the way every caller must (numeric ids of the old system included). */
export function workspaceKey(workspaceId: string | number): string {
  return String(workspaceId);
}

function loadOf(loads: Loads | undefined, id: string): number {
  if (!loads) return 0;
  if (loads instanceof Map) return (loads as ReadonlyMap<string, number>).get(id) ?? 0;
  return (loads as Record<string, number>)[id] ?? 0;
}

/** Node ids ordered from the workspace's first choice to its last (ties broken by id). Nodes of
 * weight ≤ 0 come last. */
export function rankNodes(workspaceId: string | number, nodes: readonly PlacementNode[]): string[] {
  const ws = hash64(workspaceKey(workspaceId));
  return nodes
    .map((n) => ({ id: n.id, score: hrwScore(ws, hash64(n.id), n.weight ?? 1) }))
    .sort((x, y) => y.score - x.score || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0))
    .map((s) => s.id);
}

/** The load limit of each node: ceil(c × (total + 1) × w / Σw) — the fair share of a node once the
 * workspace being placed is counted, times c. */
export function loadLimits(
  nodes: readonly PlacementNode[],
  loads: Loads | undefined,
  c: number,
): Map<string, number> {
  let total = 1;
  let weights = 0;
  for (const n of nodes) {
    total += loadOf(loads, n.id);
    weights += Math.max(0, n.weight ?? 1);
  }
  const limits = new Map<string, number>();
  for (const n of nodes) {
    const w = Math.max(0, n.weight ?? 1);
    limits.set(n.id, weights > 0 ? Math.ceil((c * total * w) / weights) : 0);
  }
  return limits;
}

/**
 * The owner of an unplaced workspace: its highest-ranked node whose load is below its bound
 * (bounded-load rendezvous). With no bound reachable it falls back to the top-ranked node; with no
 * node at all it returns undefined. `exclude` removes nodes (e.g. the current owner during a drain).
 */
export function chooseOwner(
  workspaceId: string | number,
  nodes: readonly PlacementNode[],
  loads?: Loads,
  c: number = DEFAULT_LOAD_FACTOR,
  exclude: ReadonlySet<string> | readonly string[] = [],
): string | undefined {
  const skip = exclude instanceof Set ? exclude : new Set(exclude as readonly string[]);
  const candidates = skip.size ? nodes.filter((n) => !skip.has(n.id)) : nodes;
  if (candidates.length === 0) return undefined;
  const ranking = rankNodes(workspaceId, candidates);
  const limits = loadLimits(candidates, loads, c);
  for (const id of ranking) if (loadOf(loads, id) < (limits.get(id) ?? 0)) return id;
  return ranking[0];
}

/** The next owner of a workspace that leaves `current` (drain, rebalance): chooseOwner without it. */
export function nextOwner(
  workspaceId: string | number,
  current: string,
  nodes: readonly PlacementNode[],
  loads?: Loads,
  c: number = DEFAULT_LOAD_FACTOR,
): string | undefined {
  return chooseOwner(workspaceId, nodes, loads, c, [current]);
}

/**
 * Places workspaces one after another (each counted in the loads of the next), keeping those already
 * placed on a node still present — a join therefore moves nothing, a leave only the leaver's.
 * Returns workspaceId → node id.
 */
export function placeAll(
  workspaceIds: readonly (string | number)[],
  nodes: readonly PlacementNode[],
  c: number = DEFAULT_LOAD_FACTOR,
  existing: ReadonlyMap<string, string> = new Map(),
): Map<string, string> {
  const present = new Set(nodes.map((n) => n.id));
  const loads = new Map<string, number>();
  const out = new Map<string, string>();
  const pending: string[] = [];
  for (const raw of workspaceIds) {
    const ws = workspaceKey(raw);
    const owner = existing.get(ws);
    if (owner !== undefined && present.has(owner)) {
      out.set(ws, owner);
      loads.set(owner, (loads.get(owner) ?? 0) + 1);
    } else pending.push(ws);
  }
  const index = new HrwIndex(nodes);
  for (const ws of pending) {
    const owner = index.choose(ws, loads, c);
    if (owner === undefined) continue;
    out.set(ws, owner);
    loads.set(owner, (loads.get(owner) ?? 0) + 1);
  }
  return out;
}

/**
 * The same choice as `rankNodes`/`chooseOwner` over a fixed node set, with node hashes computed once
 * (the strategy's hot path: one workspace hash plus one mix per node, no allocation for the top pick).
 */
export class HrwIndex {
  private readonly ids: string[];
  private readonly hashes: Hash64[];
  private readonly weights: number[];
  private readonly weightSum: number;
  private readonly uniform: boolean;

  constructor(nodes: readonly PlacementNode[]) {
    this.ids = nodes.map((n) => n.id);
    this.hashes = nodes.map((n) => hash64(n.id));
    this.weights = nodes.map((n) => n.weight ?? 1);
    this.weightSum = this.weights.reduce((s, w) => s + Math.max(0, w), 0);
    // With equal weights the score is monotonic in u, so the logarithm can be skipped.
    this.uniform = this.weights.every((w) => w === this.weights[0] && w > 0);
  }

  get size(): number {
    return this.ids.length;
  }

  private score(ws: Hash64, i: number): number {
    return this.uniform ? pairUniform(ws, this.hashes[i]) : hrwScore(ws, this.hashes[i], this.weights[i]);
  }

  /** Index (into the node list) of the top-ranked node, ignoring loads; -1 when empty. */
  topIndex(workspaceId: string): number {
    const ws = hash64(workspaceId);
    if (!this.uniform) {
      let best = -1;
      let bestScore = -Infinity;
      for (let i = 0; i < this.ids.length; i++) {
        const s = hrwScore(ws, this.hashes[i], this.weights[i]);
        if (s > bestScore || (s === bestScore && best >= 0 && this.ids[i] < this.ids[best])) {
          best = i;
          bestScore = s;
        }
      }
      return best;
    }
    // Equal weights: compare u by its high 21 bits (one mix per node, as in pairUniform) and compute
    // the full 53-bit u only on a tie of those bits.
    const w0 = ws[0];
    const w1 = ws[1];
    let best = -1;
    let bestHigh = -1;
    for (let i = 0; i < this.ids.length; i++) {
      const h = this.hashes[i];
      const high = fmix32(((w0 ^ h[0]) + Math.imul(w1 ^ h[1], 0x9e3779b1)) | 0) >>> 11;
      if (high > bestHigh) {
        best = i;
        bestHigh = high;
      } else if (high === bestHigh) {
        const u = pairUniform(ws, h);
        const bu = pairUniform(ws, this.hashes[best]);
        if (u > bu || (u === bu && this.ids[i] < this.ids[best])) best = i;
      }
    }
    return best;
  }

  top(workspaceId: string): string | undefined {
    const i = this.topIndex(workspaceId);
    return i < 0 ? undefined : this.ids[i];
  }

  /** chooseOwner over this index's nodes. */
  choose(workspaceId: string, loads?: Loads, c: number = DEFAULT_LOAD_FACTOR): string | undefined {
    if (this.ids.length === 0) return undefined;
    if (!loads) return this.top(workspaceId);
    const ws = hash64(workspaceId);
    let total = 1;
    for (const id of this.ids) total += loadOf(loads, id);
    const order = this.ids
      .map((id, i) => ({ id, i, s: this.score(ws, i) }))
      .sort((x, y) => y.s - x.s || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
    for (const { id, i } of order) {
      const w = Math.max(0, this.weights[i]);
      const limit = this.weightSum > 0 ? Math.ceil((c * total * w) / this.weightSum) : 0;
      if (loadOf(loads, id) < limit) return id;
    }
    return order[0].id;
  }
}
