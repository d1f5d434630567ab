// The pending rows a delivering node inserted itself while holding their endpoint (or read back pending
// while recording, when another node had inserted them), so it need not read them again: nobody else
// delivers them, so they stay pending until it does. A row is remembered only when it was inserted
// after the node took the endpoint (an older one may have been sent by the previous holder) and after
// the last row the node delivered in its queue (a recording that answered late, after the loop had read
// the row back and sent it). A row the node tried and will try again is remembered as its attempt left
// it, and a late word of its insert does not replace that (it would undo the attempt count and backoff).
// Bounded per queue and in all: past either bound rows are read from the database.
import { queueKey } from "../store/webhook-outbox-repo.ts";
import { FORGET_PARKED_MS } from "./queue-cursors.ts";
import type { OutboxDoc } from "./types.ts";

/** Rows remembered per queue (past it they are read from the database). */
const MAX_PER_QUEUE = 1000;
/** Rows remembered in all (a receiver down for long, with events arriving in many queues). */
const MAX_TOTAL = 20_000;

export class RememberedRows {
  /** Per queue, the pending rows by seq. */
  private readonly rows = new Map<string, Map<number, OutboxDoc>>();
  /** Per queue, the highest seq this node delivered (or gave up on) while holding its endpoint. */
  private readonly handledThrough = new Map<string, number>();
  /** When this node took each endpoint it holds. */
  private readonly claimedAt = new Map<string, number>();
  /** Rows remembered in all queues. */
  private total = 0;

  /**
   * @param maxTotal rows remembered in all queues at most
   * @param now the clock
   */
  constructor(
    private readonly maxTotal = MAX_TOTAL,
    private readonly now: () => number = Date.now,
  ) {}

  /** Rows remembered now. */
  get size(): number {
    return this.total;
  }

  /** This node now holds the endpoint. */
  claimed(endpointId: string): void {
    this.claimedAt.set(endpointId, this.now());
  }

  /** This node no longer holds the endpoint: everything of it is forgotten. */
  dropped(endpointId: string): void {
    this.claimedAt.delete(endpointId);
    for (const [key, rows] of this.rows)
      if (key.startsWith(`${endpointId}|`)) {
        this.total -= rows.size;
        this.rows.delete(key);
      }
    for (const key of this.handledThrough.keys())
      if (key.startsWith(`${endpointId}|`)) this.handledThrough.delete(key);
  }

  /** The queue was idle long enough to be forgotten (its cursor too): nothing of it is kept (a late
   * word of a row it had delivered is then too old to be remembered: `inserted`). */
  forgetQueue(key: string): void {
    this.total -= this.rows.get(key)?.size ?? 0;
    this.rows.delete(key);
    this.handledThrough.delete(key);
  }

  /** A row this node just inserted (unless `sent` says it was already sent here). */
  inserted(doc: OutboxDoc, sent: boolean): void {
    const key = queueKey(doc.endpointId, doc.accountId);
    if (doc.createdAt.getTime() < (this.claimedAt.get(doc.endpointId) ?? Infinity)) return;
    if (sent || doc.seq <= (this.handledThrough.get(key) ?? 0)) return;
    // Its queue may have been forgotten since (`forgetQueue`), and what was delivered there with it:
    // the word of so old a row is not trusted, the row is read from the database.
    if (this.now() - doc.createdAt.getTime() >= FORGET_PARKED_MS) return;
    this.remember(key, doc);
  }

  private remember(key: string, doc: OutboxDoc): void {
    let rows = this.rows.get(key);
    // Already remembered: as its last attempt left it, which a late insert's word must not undo.
    if (rows?.has(doc.seq)) return;
    if (this.total >= this.maxTotal || (rows?.size ?? 0) >= MAX_PER_QUEUE) return;
    if (!rows) this.rows.set(key, (rows = new Map()));
    rows.set(doc.seq, { ...doc });
    this.total++;
  }

  get(endpointId: string, accountId: string, seq: number): OutboxDoc | undefined {
    return this.rows.get(queueKey(endpointId, accountId))?.get(seq);
  }

  /** A failed attempt: the row is remembered as it left it, its attempt count, next attempt time and
   * error (so a late word of its insert finds it and leaves it). */
  retried(
    row: OutboxDoc,
    after: Pick<OutboxDoc, "attempts" | "nextAttemptAt" | "lastError" | "lastStatusCode">,
  ): void {
    const remembered = this.get(row.endpointId, row.accountId, row.seq);
    if (remembered) Object.assign(remembered, after);
    else if (this.claimedAt.has(row.endpointId))
      this.remember(queueKey(row.endpointId, row.accountId), { ...row, ...after });
  }

  /** Rows made pending again (`webhooks.resend`; a null seq: any row of the queue): what is remembered
   * of them is forgotten, so they are read from the database. */
  resent(endpointId: string, accountId: string, seqs: (number | null)[]): void {
    const key = queueKey(endpointId, accountId);
    const rows = this.rows.get(key);
    if (!rows) return;
    for (const seq of seqs.includes(null) ? [...rows.keys()] : (seqs as number[]))
      if (rows.delete(seq)) this.total--;
    if (rows.size === 0) this.rows.delete(key);
  }

  /** The row was delivered or is dead: it is never pending here again. */
  handled(row: OutboxDoc): void {
    const key = queueKey(row.endpointId, row.accountId);
    this.handledThrough.set(key, Math.max(row.seq, this.handledThrough.get(key) ?? 0));
    const rows = this.rows.get(key);
    if (rows?.delete(row.seq)) this.total--;
    if (rows?.size === 0) this.rows.delete(key);
  }
}
