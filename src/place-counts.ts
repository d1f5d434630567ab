// Places taken, in all and per key, each under its bound: the gateway's upload slots and a node's
// media places count the same way (they differ in what a full count does: refuse, or wait). A base
// module (no imports) so every layer can use it.

export class PlaceCounts {
  private total = 0;
  private readonly perKey = new Map<string, number>();

  constructor(
    readonly limit: number,
    readonly perKeyLimit: number,
  ) {}

  /** Places taken. */
  get taken(): number {
    return this.total;
  }

  /** The bound one more place of `key` would pass ("key" checked first), or null when it fits. */
  full(key: string): "key" | "all" | null {
    if ((this.perKey.get(key) ?? 0) >= this.perKeyLimit) return "key";
    return this.total >= this.limit ? "all" : null;
  }

  take(key: string): void {
    this.total++;
    this.perKey.set(key, (this.perKey.get(key) ?? 0) + 1);
  }

  give(key: string): void {
    this.total--;
    const left = (this.perKey.get(key) ?? 1) - 1;
    if (left > 0) this.perKey.set(key, left);
    else this.perKey.delete(key);
  }
}
