// Group commit: one write in flight at a time; what arrives meanwhile goes out together when it
// returns (up to `maxBatch` a write), and a lone item goes out at once. The write settles each item's
// promise itself (each caller gets its own answer).

/** An item waiting for its write, and how to answer its caller. */
export interface Waiting<I, R> {
  item: I;
  resolve: (result: R) => void;
  reject: (err: unknown) => void;
}

export class GroupCommit<I, R> {
  private queue: Waiting<I, R>[] = [];
  private busy = false;

  /** @param write writes a batch and settles every item of it; should it throw, the items it left
   * unsettled are rejected with that error */
  constructor(
    private readonly write: (batch: Waiting<I, R>[]) => Promise<void>,
    private readonly maxBatch: number,
  ) {}

  add(item: I): Promise<R> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    if (this.busy || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.maxBatch);
    this.busy = true;
    void this.write(batch)
      .catch((err: unknown) => {
        for (const w of batch) w.reject(err);
      })
      .finally(() => {
        this.busy = false;
        this.pump();
      });
  }
}
