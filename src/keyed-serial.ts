// Runs operations of one key one after another, operations of different keys side by side. A base
// module (no imports) so every layer can use it.

export class KeyedSerial {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs `op` once every operation started earlier under `key` has settled; its result is `op`'s. */
  run<T>(key: string, op: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    const result = before.then(op, op);
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    // The last one out removes the key, so the map holds only keys with work in flight.
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Keys with an operation in flight. */
  get size(): number {
    return this.tails.size;
  }
}
