// A value per key, read through a loader and reused for `maxAgeMs`: a change made on another node shows
// within that time; `forget` drops one at once (a change made through this node). A load under way
// while anything is forgotten answers its caller but is not kept (it may have read the old value).
// Bounded: past `maxEntries` keys the one loaded longest ago goes, so a flood of distinct keys cannot
// grow it.
import { BoundedMap } from "./bounded-map.ts";

export class TtlCache<K, V> {
  private readonly entries: BoundedMap<K, { value: V; at: number }>;
  /** Counts `forget` calls: a load that began under another count is not kept. */
  private forgets = 0;

  constructor(
    private readonly maxAgeMs: number,
    maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {
    this.entries = new BoundedMap(maxEntries);
  }

  async get(key: K, load: (key: K) => Promise<V>): Promise<V> {
    const hit = this.entries.get(key);
    if (hit && this.now() - hit.at < this.maxAgeMs) return hit.value;
    const forgets = this.forgets;
    const value = await load(key);
    if (forgets !== this.forgets) return value;
    this.entries.set(key, { value, at: this.now() });
    return value;
  }

  forget(key: K): void {
    this.entries.delete(key);
    this.forgets++;
  }
}
