// Where a delivering node stands in each (endpoint, account) queue of the endpoints it holds: the seq
// to send next and when to look at the queue again, and the queues it heard of without knowing where
// they start (their first pending row is looked up). A queue found empty is parked: the delivery loop's
// walk over the due queues no longer meets it, and a word of a new row (or a scan) wakes it. Parked
// longer than FORGET_PARKED_MS it is forgotten, so idle accounts cost nothing; a row heard of later
// looks its first pending row up again (one read).
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
  /** Set by `rewind`: the rows from `from` to before `to` were finished when a row before them was
   * made pending again; once past that row the cursor goes back to `to` without reading each. */
  skip?: { from: number; to: number };
}

/** Once the cursor is past the row a rewind went back to, it goes on from where it was (`skip`). */
export function skipFinished(cursor: Cursor): void {
  const skip = cursor.skip;
  if (!skip || cursor.next < skip.from) return;
  cursor.next = Math.max(cursor.next, skip.to);
  cursor.skip = undefined;
}

/** How long a parked queue's cursor is kept (a word of a new row within it costs no read). */
export const FORGET_PARKED_MS = 10 * 60_000;

export class QueueCursors {
  /** The queues the delivery loop walks: due now, later, or with an attempt under way. */
  private readonly cursors = new Map<string, Cursor>();
  /** Queues found empty, in the order they were parked, with when. */
  private readonly parked = new Map<string, { cursor: Cursor; at: number }>();
  /** Queues heard of without a cursor, by key. */
  private readonly unknown = new Map<string, { endpointId: string; accountId: string }>();

  /**
   * @param forgotten told of each queue forgotten after its time parked (what else is kept of it goes)
   * @param now the clock
   */
  constructor(
    private readonly forgotten: (key: string) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {}

  get(key: string): Cursor | undefined {
    return this.cursors.get(key) ?? this.parked.get(key)?.cursor;
  }

  has(key: string): boolean {
    return this.cursors.has(key) || this.parked.has(key);
  }

  /** The queues not parked, in the order the delivery loop takes them. */
  entries(): IterableIterator<[string, Cursor]> {
    return this.cursors.entries();
  }

  /** Queues kept, walked and parked (a cursor each). */
  get size(): { walked: number; parked: number } {
    return { walked: this.cursors.size, parked: this.parked.size };
  }

  /** Nothing pending at the queue's cursor (`expected`, when the caller read through it): out of the
   * walk until a row is heard of (or a scan finds one). Queues parked for longer than
   * FORGET_PARKED_MS are forgotten. */
  park(key: string, expected?: Cursor): void {
    const cursor = this.cursors.get(key);
    // Replaced meanwhile (the queue started again at its first pending row): that one is due.
    if (!cursor || (expected && cursor !== expected)) return;
    const now = this.now();
    cursor.wakeAt = Infinity;
    this.cursors.delete(key);
    this.parked.set(key, { cursor, at: now });
    for (const [old, { at }] of this.parked) {
      if (now - at < FORGET_PARKED_MS) break;
      this.parked.delete(old);
      this.forgotten(old);
    }
  }

  /** A pending row at `seq` the cursor may have passed or not yet looked for: due now from there. */
  wake(key: string, seq: number): void {
    const cursor = this.unpark(key) ?? this.cursors.get(key);
    if (!cursor) return;
    cursor.next = Math.min(cursor.next, seq);
    cursor.wakeAt = 0;
  }

  /** The row at `seq`, which the cursor had passed, is pending again (resent): due now from there, and
   * past it back to where the cursor was. With `several` rows resent, or a second rewind before the
   * first is done, it walks by reads (a row in between is pending again too). */
  rewind(key: string, seq: number, several = false): void {
    const cursor = this.get(key);
    if (!cursor) return;
    if (several || cursor.skip) cursor.skip = undefined;
    else if (seq < cursor.next) cursor.skip = { from: seq + 1, to: cursor.next };
    this.wake(key, seq);
  }

  private unpark(key: string): Cursor | undefined {
    const parked = this.parked.get(key);
    if (!parked) return undefined;
    this.parked.delete(key);
    this.cursors.set(key, parked.cursor);
    return parked.cursor;
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
    this.parked.delete(queueKey(endpointId, accountId));
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
    const cursor = this.unpark(key) ?? this.cursors.get(key);
    if (cursor) {
      cursor.heard++;
      cursor.wakeAt = Math.min(cursor.wakeAt, this.now());
    } else if (r.seq === 1) this.startAt({ endpointId: r.endpointId, accountId: r.accountId, seq: 1 });
    else this.unknown.set(key, { endpointId: r.endpointId, accountId: r.accountId });
  }

  /** The queues heard of without a cursor since the last call. */
  takeUnknown(): { endpointId: string; accountId: string }[] {
    const queues = [...this.unknown.entries()].filter(([key]) => !this.has(key)).map(([, q]) => q);
    this.unknown.clear();
    return queues;
  }

  /** Forgets the endpoint's queues (no longer held). */
  dropEndpoint(endpointId: string): void {
    for (const [key, c] of this.cursors) if (c.endpointId === endpointId) this.cursors.delete(key);
    for (const [key, p] of this.parked) if (p.cursor.endpointId === endpointId) this.parked.delete(key);
  }
}
