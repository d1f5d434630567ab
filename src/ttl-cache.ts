// A value per key, read through a loader and reused for `maxAgeMs` (or a time per value): a change made
// on another node shows within that time; `forget` drops one at once (a change made through this node).
// A load under way while anything is forgotten answers its caller but is not kept (it may have read the
// old value). Bounded: past `maxEntries` keys the one loaded longest ago goes (with `lru`, the one used
// longest ago), so a flood of distinct keys cannot grow it.
import { BoundedMap } from "./bounded-map.ts";

export class TtlCache<K, V> {
  private readonly entries: BoundedMap<K, { value: V; until: number }>;
  /** Counts `forget` calls: a load that began under another count is not kept. */
  private forgets = 0;
  private readonly ageOf: (value: V) => number;

  /**
   * @param maxAgeMs how long a value is reused, or that time for each value (e.g. shorter for "none").
   * @param lru a hit makes its key the newest, so the least recently used key is the one dropped.
   */
  constructor(
    maxAgeMs: number | ((value: V) => number),
    maxEntries = 10_000,
    private readonly now: () => number = Date.now,
    private readonly lru = false,
  ) {
    this.entries = new BoundedMap(maxEntries);
    this.ageOf = typeof maxAgeMs === "number" ? () => maxAgeMs : maxAgeMs;
  }

  async get(key: K, load: (key: K) => Promise<V>): Promise<V> {
    const hit = this.peek(key);
    if (hit) return hit.value;
    const forgets = this.forgets;
    const value = await load(key);
    if (forgets !== this.forgets) return value;
    this.entries.set(key, { value, until: this.now() + this.ageOf(value) });
    return value;
  }

  /** The value while it is fresh (a hit, as `get` counts it), else undefined; never loads. */
  peek(key: K): { value: V } | undefined {
    const hit = this.entries.get(key);
    if (!hit || this.now() >= hit.until) return undefined;
    if (this.lru) this.entries.set(key, hit);
    return { value: hit.value };
  }

  forget(key: K): void {
    this.entries.delete(key);
    this.forgets++;
  }

  /** Keys held, the next to be dropped first (tests and diagnostics). */
  keys(): K[] {
    return [...this.entries.keys()];
  }
}
