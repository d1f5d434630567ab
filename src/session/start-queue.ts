// Engine starts run at most `concurrency` at a time per node: Chromium start storms freeze hosts.
// Waiting accounts stay `initializing` until their turn.

export class StartQueue {
  private active = 0;
  private readonly waiting = new Map<string, () => Promise<void>>();

  /** @param concurrency concurrent starts. @default 2 (config START_CONCURRENCY) */
  constructor(private readonly concurrency = 2) {}

  /** Queues the start of `key` (replacing a start of it still waiting). */
  push(key: string, run: () => Promise<void>): void {
    this.waiting.delete(key);
    this.waiting.set(key, run);
    this.pump();
  }

  /**
   * A turn for a start made outside the queue (an engine relaunching itself after a crash): resolves,
   * in arrival order with the other starts, with the function that ends the turn. A turn cancelled
   * while waiting never resolves.
   */
  turn(key: string): Promise<() => void> {
    return new Promise((resolve) => this.push(key, () => new Promise<void>((end) => resolve(end))));
  }

  /** Drops a start that has not begun; true when one was waiting. */
  cancel(key: string): boolean {
    return this.waiting.delete(key);
  }

  get pending(): number {
    return this.waiting.size;
  }

  get running(): number {
    return this.active;
  }

  private pump(): void {
    while (this.active < this.concurrency && this.waiting.size > 0) {
      const [key, run] = this.waiting.entries().next().value!;
      this.waiting.delete(key);
      this.active++;
      run()
        .catch(() => undefined)
        .finally(() => {
          this.active--;
          this.pump();
        });
    }
  }
}
