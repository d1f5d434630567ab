// Where a delivering node stands in each (endpoint, account) queue of the endpoints it holds: the seq
// to send next and when to look at the queue again, and the queues it heard of without knowing where
// they start (their first pending row is looked up).
import { queueKey, type QueueHead, type RecordResult } from "../store/webhook-outbox-repo.ts";

/** A row's place: its queue (endpoint, account) and its seq there (null: not known). */
export type QueuePosition = Pick<RecordResult, "endpointId" | "accountId" | "seq">;

/** A queue this node delivers: the seq to send next, and when to look at it again. */
export interface Cursor {
  endpointId: string;
  accountId: string;
  next: number;
  /** 0: now; Infinity: idle until told of a new row. */
  wakeAt: number;
  /** How often this node was told of a row in the queue: a read that found nothing at `next` idles
   * the queue only if no row was heard of while it ran (that row may be the one it missed). */
  heard: number;
}

export class QueueCursors {
  private readonly cursors = new Map<string, Cursor>();
  /** Queues heard of without a cursor, by key. */
  private readonly unknown = new Map<string, { endpointId: string; accountId: string }>();

  get(key: string): Cursor | undefined {
    return this.cursors.get(key);
  }

  has(key: string): boolean {
    return this.cursors.has(key);
  }

  entries(): IterableIterator<[string, Cursor]> {
    return this.cursors.entries();
  }

  /** The queue goes to the back of the line: the walk for free attempt slots (the delivery loop's
   * `dispatchDue`) meets the others first, so busy queues cannot keep the slots from the rest. */
  toBack(key: string): void {
    const cursor = this.cursors.get(key);
    if (!cursor) return;
    this.cursors.delete(key);
    this.cursors.set(key, cursor);
  }

  /** The queue starts (again) at its first pending row, due now. */
  startAt(head: QueueHead): void {
    const { endpointId, accountId, seq } = head;
    this.cursors.set(queueKey(endpointId, accountId), {
      endpointId,
      accountId,
      next: seq,
      wakeAt: 0,
      heard: 0,
    });
  }

  /** A row at `seq` in the queue: its cursor is due. A new queue starts at 1; otherwise, without a
   * cursor, its first pending row is to be looked up (`takeUnknown`): the row heard of is not
   * necessarily the first (another node may have put an event of another publisher, say
   * account.created, before it). */
  heardOf(r: QueuePosition): void {
    const key = queueKey(r.endpointId, r.accountId);
    const cursor = this.cursors.get(key);
    if (cursor) {
      cursor.heard++;
      cursor.wakeAt = Math.min(cursor.wakeAt, Date.now());
    } else if (r.seq === 1) this.startAt({ endpointId: r.endpointId, accountId: r.accountId, seq: 1 });
    else this.unknown.set(key, { endpointId: r.endpointId, accountId: r.accountId });
  }

  /** The queues heard of without a cursor since the last call. */
  takeUnknown(): { endpointId: string; accountId: string }[] {
    const queues = [...this.unknown.entries()].filter(([key]) => !this.cursors.has(key)).map(([, q]) => q);
    this.unknown.clear();
    return queues;
  }

  /** Forgets the endpoint's queues (no longer held). */
  dropEndpoint(endpointId: string): void {
    for (const [key, c] of this.cursors) if (c.endpointId === endpointId) this.cursors.delete(key);
  }
}
