// A Map holding at most `max` keys, for the caches and per-key memos of a node (address verdicts, API
// keys, quotas, placements pending, rendered QRs…) that a flood of distinct keys must not grow without
// bound. Setting a key makes it the newest; setting a new key when full drops the one set longest ago
// (a Map iterates in insertion order, so that is its first key). Reads do not reorder: a cache that
// wants least-recently-used order sets a hit again.
export class BoundedMap<K, V> extends Map<K, V> {
  constructor(readonly max: number) {
    super();
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`max must be a positive integer, got ${max}`);
  }

  override set(key: K, value: V): this {
    if (!this.delete(key) && this.size >= this.max) this.delete(this.keys().next().value as K);
    return super.set(key, value);
  }
}
