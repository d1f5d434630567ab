// The outbound pace of each account (SEND_MIN_GAP_MS): a burst of sends leaves one at a time, at least
// the gap apart plus up to half of it again at random, so it does not look like a bot. Each send takes
// the account's next slot when it asks (first come, first served) and waits for it; the node's count of
// waiting sends is its queue depth (a metric). A send that would wait longer than a request may is
// refused instead of queued.
import { SendQueueFullError } from "../errors.ts";

export interface PacerOptions {
  /** Least time between two sends of one account; 0 turns pacing off. @default 1000 */
  minGapMs: number;
  /** A number in [0, 1): the share of half a gap added at random. @default Math.random */
  random?: () => number;
  /** Longest a send may wait for its slot; a send that would wait longer is refused (SendQueueFullError)
   * and takes no slot, so a request does not time out while its message still leaves later.
   * @default Infinity */
  maxWaitMs?: number;
  /** Told the node's queue depth whenever it changes. */
  onDepth?: (depth: number) => void;
}

export class SendPacer {
  /** Per account: when its next send may leave (epoch ms). */
  private readonly nextAt = new Map<string, number>();
  private waiting = 0;

  constructor(private readonly opts: PacerOptions) {}

  /** Sends waiting for their slot on this node. */
  get depth(): number {
    return this.waiting;
  }

  /** Resolves when the account's next send may leave. */
  async turn(accountId: string, now = Date.now()): Promise<void> {
    const gap = this.opts.minGapMs;
    if (gap <= 0) return;
    const at = Math.max(now, this.nextAt.get(accountId) ?? 0);
    if (at - now > (this.opts.maxWaitMs ?? Infinity))
      throw new SendQueueFullError(accountId, Math.ceil((at - now) / 1000));
    this.nextAt.set(accountId, at + gap + Math.floor(gap * 0.5 * (this.opts.random ?? Math.random)()));
    this.forgetPast(now);
    if (at <= now) return;
    this.setDepth(this.waiting + 1);
    try {
      await new Promise((resolve) => setTimeout(resolve, at - now));
    } finally {
      this.setDepth(this.waiting - 1);
    }
  }

  private setDepth(depth: number): void {
    this.waiting = depth;
    this.opts.onDepth?.(depth);
  }

  /** Accounts whose next slot has passed need no entry (keeps the map as small as the active accounts). */
  private forgetPast(now: number): void {
    if (this.nextAt.size < 1024) return;
    for (const [id, at] of this.nextAt) if (at <= now) this.nextAt.delete(id);
  }
}
