// The pending rows a delivering node inserted itself while holding their endpoint (or read back pending
// while recording, when another node had inserted them), so it need not read them again: nobody else
// delivers them, so they stay pending until it does. A row is remembered only when it was inserted
// after the node took the endpoint (an older one may have been sent by the previous holder) and after
// the last row the node delivered in its queue (a recording that answered late, after the loop had read
// the row back and sent it).
import { queueKey } from "../store/webhook-outbox-repo.ts";
import type { OutboxDoc } from "./types.ts";

/** Rows remembered per queue (past it they are read from the database). */
const MAX_PER_QUEUE = 1000;

export class RememberedRows {
  /** Per queue, the pending rows by seq. */
  private readonly rows = new Map<string, Map<number, OutboxDoc>>();
  /** Per queue, the highest seq this node delivered (or gave up on) while holding its endpoint. */
  private readonly handledThrough = new Map<string, number>();
  /** When this node took each endpoint it holds. */
  private readonly claimedAt = new Map<string, number>();

  /** This node now holds the endpoint. */
  claimed(endpointId: string): void {
    this.claimedAt.set(endpointId, Date.now());
  }

  /** This node no longer holds the endpoint: everything of it is forgotten. */
  dropped(endpointId: string): void {
    this.claimedAt.delete(endpointId);
    for (const map of [this.rows, this.handledThrough])
      for (const key of map.keys()) if (key.startsWith(`${endpointId}|`)) map.delete(key);
  }

  /** A row this node just inserted (unless `sent` says it was already sent here). */
  inserted(doc: OutboxDoc, sent: boolean): void {
    const key = queueKey(doc.endpointId, doc.accountId);
    if (doc.createdAt.getTime() < (this.claimedAt.get(doc.endpointId) ?? Infinity)) return;
    if (sent || doc.seq <= (this.handledThrough.get(key) ?? 0)) return;
    let rows = this.rows.get(key);
    if (!rows) this.rows.set(key, (rows = new Map()));
    if (rows.size < MAX_PER_QUEUE) rows.set(doc.seq, { ...doc });
  }

  get(endpointId: string, accountId: string, seq: number): OutboxDoc | undefined {
    return this.rows.get(queueKey(endpointId, accountId))?.get(seq);
  }

  /** A failed attempt: the remembered row carries its new attempt count and time. */
  retried(row: OutboxDoc, attempts: number, nextAttemptAt: Date): void {
    const remembered = this.get(row.endpointId, row.accountId, row.seq);
    if (remembered) Object.assign(remembered, { attempts, nextAttemptAt });
  }

  /** The row was delivered or is dead: it is never pending here again. */
  handled(row: OutboxDoc): void {
    const key = queueKey(row.endpointId, row.accountId);
    this.handledThrough.set(key, Math.max(row.seq, this.handledThrough.get(key) ?? 0));
    const rows = this.rows.get(key);
    rows?.delete(row.seq);
    if (rows?.size === 0) this.rows.delete(key);
  }
}
