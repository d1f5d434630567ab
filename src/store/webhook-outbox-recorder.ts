// Recording into the webhook outbox (src/store/webhook-outbox-repo.ts): each event for each matching
// endpoint goes into the next free slot of its queue, `<endpointId>|<accountId>|<seq, zero-padded>`.
//
// Recording is idempotent across nodes. One webhooks node records a workspace's events at a time
// (src/webhooks/recorder-slots.ts), reading its event log in order, but two may during a hand-over.
// The unique `_id` lets one insert win a slot; the unique index on {eventId, endpointId} makes a
// second insert of the same event fail wherever it lands. A node records
// one account's events in order, so slot order follows the log's order whichever node wins each insert.
// No step needs an atomic conditional update (FerretDB has none under concurrency).
import type { Collection } from "mongodb";
import { BoundedMap } from "../bounded-map.ts";
import { inParallel } from "../in-parallel.ts";
import { retry } from "../retry.ts";
import type { EndpointTarget, OutboxDoc } from "./webhook-docs.ts";
import { InsertBatcher } from "./insert-batch.ts";
import { insertedInOrder, isDuplicateKey, ORDERED_INSERT_MAX } from "./mongo.ts";

export interface RecordedEvent {
  eventId: string;
  event: string;
  workspaceId: string;
  accountId: string;
  payload: unknown;
}

/** Where an event went in one endpoint's queue; `seq` is null when another node had already recorded
 * it in a slot this node did not look at. */
export interface RecordResult {
  endpointId: string;
  accountId: string;
  seq: number | null;
  inserted: boolean;
  /** The row as inserted (when `inserted`), or as read back when another node had recorded it. */
  doc?: OutboxDoc;
}

/** A run of events bound for one queue, in order. */
interface RunOfQueue {
  endpointId: string;
  accountId: string;
  events: RecordedEvent[];
}

/** A queue's run and the slot its first event takes. */
type QueueAt = RunOfQueue & { from: number };

/** The answer for a row this node inserted, or found holding the event. */
function resultOf(doc: OutboxDoc, inserted: boolean): RecordResult {
  return { endpointId: doc.endpointId, accountId: doc.accountId, seq: doc.seq, inserted, doc };
}

export function queueKey(endpointId: string, accountId: string): string {
  return `${endpointId}|${accountId}`;
}

export function slotId(endpointId: string, accountId: string, seq: number): string {
  return `${endpointId}|${accountId}|${String(seq).padStart(12, "0")}`;
}

/** Retries an operation a few times on errors other than a duplicate key (SQLite's "database is
 * locked" under concurrent writers on FerretDB, a failover on MongoDB). */
export function withRetry<T>(op: (attempt: number) => Promise<T>, tries = 4): Promise<T> {
  return retry(op, {
    attempts: tries,
    delayMs: (attempt) => 25 * 2 ** attempt * (0.5 + Math.random()),
    shouldRetry: (err) => !isDuplicateKey(err),
  });
}

/** Queue tails known at most (with no pruning, `maxTailAgeMs` forgets none): past it the one learnt
 * longest ago is forgotten, and read again when its queue is next recorded for. */
const MAX_TAILS = 100_000;

export class OutboxRecorder {
  /** Last seq this node knows in each queue (and when it last learnt it); a cold queue is read once.
   * Each note moves its queue to the end, so the map runs from the tail learnt longest ago on. */
  private readonly tails = new BoundedMap<string, { seq: number; at: number }>(MAX_TAILS);
  /** When tails older than `maxTailAgeMs` were last forgotten. */
  private sweptAt: number;
  /** Rows recorded together (the next events of many accounts at once) go out in one unordered
   * command; each insert gets its own answer, the one `insertOne` would have given, so the slot logic
   * below is unchanged. */
  private readonly inserts: InsertBatcher<OutboxDoc>;

  /**
   * @param maxTailAgeMs A known tail older than this is read again. Pruning deletes only rows older than
   * the retention, so with half the retention here a cached tail is never below a pruned slot (an insert
   * can never reuse a pruned position). Older tails are forgotten as recording goes on, at most once
   * per this period: a queue recorded for once is not kept for ever. @default Infinity (no pruning:
   * nothing to reuse)
   * @param now the clock
   */
  constructor(
    private readonly col: Collection<OutboxDoc>,
    private readonly nodeId: string,
    private readonly maxTailAgeMs = Infinity,
    private readonly now: () => number = Date.now,
  ) {
    this.inserts = new InsertBatcher(this.col);
    this.sweptAt = now();
  }

  /** Records `ev` for each endpoint. */
  async record(ev: RecordedEvent, endpoints: EndpointTarget[]): Promise<RecordResult[]> {
    const results: RecordResult[] = [];
    for (const endpoint of endpoints)
      results.push(await withRetry(() => this.recordFor(ev, endpoint._id), 8));
    return results;
  }

  /** The tail this node knows of a queue, while fresh. */
  private knownTail(endpointId: string, accountId: string): number | undefined {
    const known = this.tails.get(queueKey(endpointId, accountId));
    return known && this.now() - known.at <= this.maxTailAgeMs ? known.seq : undefined;
  }

  private async tailOf(endpointId: string, accountId: string): Promise<number> {
    const known = this.knownTail(endpointId, accountId);
    if (known !== undefined) return known;
    const [last] = await this.col
      .find({ endpointId, accountId }, { projection: { seq: 1 } })
      .sort({ seq: -1 })
      .limit(1)
      .toArray();
    this.noteTail(endpointId, accountId, last?.seq ?? 0);
    return last?.seq ?? 0;
  }

  /**
   * The tails of a run's queues; the cold ones read 8 at a time, each by its queue's `endpointId` and
   * `accountId`: plain string equalities, which our FerretDB build searches in the queue index, so a
   * read touches that queue's rows only. (One read of every cold queue at once, by `$in` lists, went
   * through every row the outbox kept; before the build searched indexes, so did each of these.)
   */
  private async tailsOf(queues: RunOfQueue[]): Promise<number[]> {
    const cold = queues.filter((q) => this.knownTail(q.endpointId, q.accountId) === undefined);
    await inParallel(cold, 8, (q) => this.tailOf(q.endpointId, q.accountId));
    return Promise.all(queues.map((q) => this.tailOf(q.endpointId, q.accountId)));
  }

  private noteTail(endpointId: string, accountId: string, seq: number): void {
    const key = queueKey(endpointId, accountId);
    const known = this.tails.get(key);
    const now = this.now();
    this.tails.set(key, { seq: Math.max(seq, known?.seq ?? 0), at: now });
    if (now - this.sweptAt < this.maxTailAgeMs) return;
    // Tails too old to be used are forgotten (each queue recorded for once would otherwise stay).
    this.sweptAt = now;
    for (const [old, { at }] of this.tails) {
      if (now - at <= this.maxTailAgeMs) break;
      this.tails.delete(old);
    }
  }

  /**
   * Records a run of events (in the order given) for their endpoints. Every queue's rows go in one
   * ordered insert, queue after queue, at the slots after each queue's known tail; the first refused row
   * stops it, and the rest of that queue is recorded on its own (`recordQueue`) while the queues after
   * it go in another such insert, less those another node has already recorded whole. Answers as
   * `record` would have for each event in turn (a row found recorded comes back as read).
   */
  async recordMany(items: { ev: RecordedEvent; endpoints: EndpointTarget[] }[]): Promise<RecordResult[]> {
    const queues = new Map<string, RunOfQueue>();
    for (const { ev, endpoints } of items) {
      for (const { _id: endpointId } of endpoints) {
        const key = queueKey(endpointId, ev.accountId);
        let queue = queues.get(key);
        if (!queue) queues.set(key, (queue = { endpointId, accountId: ev.accountId, events: [] }));
        queue.events.push(ev);
      }
    }
    return withRetry(() => this.recordTogether([...queues.values()]), 8);
  }

  /** The run's queues in groups of at most ORDERED_INSERT_MAX rows (a queue is never split; one longer
   * than that is a group of its own), each group inserted on its own and the groups at once: they hold
   * different queues, so no group's insert orders another's rows, and the store works on one group
   * while the next is on the wire. */
  private async recordTogether(queues: RunOfQueue[]): Promise<RecordResult[]> {
    const tails = await this.tailsOf(queues);
    const groups: QueueAt[][] = [];
    let rows = Infinity;
    queues.forEach((q, i) => {
      if (rows + q.events.length > ORDERED_INSERT_MAX) {
        groups.push([]);
        rows = 0;
      }
      groups.at(-1)!.push({ ...q, from: tails[i] + 1 });
      rows += q.events.length;
    });
    // Every group settles before a failure is passed on: the caller's retry must not race this node's
    // own inserts still in flight.
    const settled = await Promise.allSettled(groups.map((group) => this.recordGroup(group)));
    for (const s of settled) if (s.status === "rejected") throw s.reason;
    return settled.flatMap((s) => (s.status === "fulfilled" ? s.value : []));
  }

  private async recordGroup(group: QueueAt[]): Promise<RecordResult[]> {
    const results: RecordResult[] = [];
    const apart: Promise<RecordResult[]>[] = [];
    let rest = group;
    while (rest.length) {
      const rows = rest.flatMap((q) => q.events.map((ev, k) => this.rowOf(ev, q.endpointId, q.from + k)));
      const inserted = await this.insertInOrder(rows);
      let offset = 0;
      let i = 0;
      for (; i < rest.length; i++) {
        const q = rest[i];
        const went = Math.max(0, Math.min(inserted - offset, q.events.length));
        for (const doc of rows.slice(offset, offset + went)) results.push(resultOf(doc, true));
        if (went > 0) this.noteTail(q.endpointId, q.accountId, q.from + went - 1);
        offset += q.events.length;
        if (went < q.events.length) {
          apart.push(this.recordQueue(q.endpointId, q.events.slice(went)));
          break;
        }
      }
      // Another node is recording this run too: the queues it already has (read back in one query)
      // are left out, so only the others are tried (a refused insert takes the database's single
      // writer for nothing).
      rest = await this.withoutRecorded(rest.slice(i + 1), results);
    }
    const settled = await Promise.allSettled(apart);
    for (const s of settled) if (s.status === "rejected") throw s.reason;
    return [...results, ...settled.flatMap((s) => (s.status === "fulfilled" ? s.value : []))];
  }

  /** The queues of `rest` whose whole run another node recorded at the slots it would take answer in
   * `results` (with the rows as found); the others are returned. One read for all of them. */
  private async withoutRecorded(rest: QueueAt[], results: RecordResult[]): Promise<QueueAt[]> {
    const found = await this.rowsAt(
      rest.flatMap((q) => q.events.map((_, k) => slotId(q.endpointId, q.accountId, q.from + k))),
    );
    return rest.filter((q) => {
      const rows = this.recordedRun(found, q.endpointId, q.events, q.from);
      if (rows.length < q.events.length) return true;
      for (const doc of rows) results.push(resultOf(doc, false));
      this.noteTail(q.endpointId, q.accountId, q.from + q.events.length - 1);
      return false;
    });
  }

  /** The rows of `events` found at the slots from `from` on, each holding its event, up to the first
   * slot that does not. */
  private recordedRun(
    found: Map<string, OutboxDoc>,
    endpointId: string,
    events: RecordedEvent[],
    from: number,
  ): OutboxDoc[] {
    const rows: OutboxDoc[] = [];
    for (const ev of events) {
      const row = found.get(slotId(endpointId, ev.accountId, from + rows.length));
      if (row?.eventId !== ev.eventId) break;
      rows.push(row);
    }
    return rows;
  }

  /** The rows stored at these slots, by `_id` (`$in`: one query per 500). */
  private async rowsAt(ids: string[]): Promise<Map<string, OutboxDoc>> {
    const found = new Map<string, OutboxDoc>();
    for (let i = 0; i < ids.length; i += 500) {
      const rows = await this.col.find({ _id: { $in: ids.slice(i, i + 500) } }).toArray();
      for (const row of rows) found.set(row._id, row);
    }
    return found;
  }

  private rowOf(ev: RecordedEvent, endpointId: string, seq: number): OutboxDoc {
    const now = new Date();
    return {
      _id: slotId(endpointId, ev.accountId, seq),
      eventId: ev.eventId,
      endpointId,
      workspaceId: ev.workspaceId,
      accountId: ev.accountId,
      event: ev.event,
      payload: ev.payload,
      seq,
      status: "pending",
      attempts: 0,
      nextAttemptAt: now,
      lastError: null,
      lastStatusCode: null,
      createdAt: now,
      deliveredAt: null,
      recordedBy: this.nodeId,
    };
  }

  private async recordFor(ev: RecordedEvent, endpointId: string): Promise<RecordResult> {
    const { accountId } = ev;
    let seq = (await this.tailOf(endpointId, accountId)) + 1;
    for (;;) {
      const doc = this.rowOf(ev, endpointId, seq);
      try {
        await this.inserts.insert(doc);
        this.noteTail(endpointId, accountId, seq);
        return resultOf(doc, true);
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
      }
      const taken = await this.slotTaken(ev, endpointId, seq);
      if (taken !== "other") return taken;
      seq++;
    }
  }

  /** After an insert at `seq` was refused as a duplicate: the slot is taken (by this event from another
   * node, or by another event), or this event is already recorded in an earlier slot (the unique
   * {eventId, endpointId} index refused it). "other": another event holds the slot. */
  private async slotTaken(
    ev: RecordedEvent,
    endpointId: string,
    seq: number,
  ): Promise<RecordResult | "other"> {
    const { accountId } = ev;
    const occupant = await this.occupantOf(endpointId, accountId, seq);
    if (!occupant) return { endpointId, accountId, seq: null, inserted: false };
    this.noteTail(endpointId, accountId, seq);
    return occupant.eventId === ev.eventId ? { endpointId, accountId, seq, inserted: false } : "other";
  }

  /**
   * One queue's events in order: an ordered insert of the rest at the following slots, stopped by the
   * first refused row; then the rest again. After the first refusal the rest of the run is read at once:
   * another node recording the same run usually has it, or a part of it (the rest is inserted after).
   * Otherwise the refused slot is settled as in `recordFor`, and once a slot is found holding this very
   * event, the next slots are read one by one before any insert is tried, until a free one.
   */
  private async recordQueue(endpointId: string, events: RecordedEvent[]): Promise<RecordResult[]> {
    const { accountId } = events[0];
    const results: RecordResult[] = [];
    let seq = (await this.tailOf(endpointId, accountId)) + 1;
    let i = 0;
    let racing = false;
    let restRead = false;
    while (i < events.length) {
      if (!racing) {
        const docs = events.slice(i).map((ev, k) => this.rowOf(ev, endpointId, seq + k));
        const inserted = await this.insertInOrder(docs);
        for (const doc of docs.slice(0, inserted)) results.push(resultOf(doc, true));
        if (inserted > 0) this.noteTail(endpointId, accountId, seq + inserted - 1);
        i += inserted;
        seq += inserted;
        if (i === events.length) break;
      }
      if (!restRead) {
        // As far as the slots hold this run's events in order, they are recorded.
        restRead = true;
        const rest = events.slice(i);
        const found = await this.rowsAt(rest.map((_, k) => slotId(endpointId, accountId, seq + k)));
        const rows = this.recordedRun(found, endpointId, rest, seq);
        for (const row of rows) results.push(resultOf(row, false));
        const k = rows.length;
        if (k > 0) this.noteTail(endpointId, accountId, seq + k - 1);
        i += k;
        seq += k;
        if (i === events.length) break;
        if (k > 0 && !found.has(slotId(endpointId, accountId, seq))) continue;
      }
      const taken = await this.slotTaken(events[i], endpointId, seq);
      if (taken === "other") {
        seq++;
        continue;
      }
      // An empty slot: while racing, free (inserts go on from it); after a refused insert, this event
      // was recorded in an earlier slot.
      if (taken.seq === null && racing) {
        racing = false;
        continue;
      }
      results.push(taken);
      i++;
      if (taken.seq !== null) {
        seq++;
        racing = true;
      }
    }
    return results;
  }

  private occupantOf(
    endpointId: string,
    accountId: string,
    seq: number,
  ): Promise<{ eventId: string } | null> {
    return this.col.findOne({ _id: slotId(endpointId, accountId, seq) }, { projection: { eventId: 1 } });
  }

  /** Inserts `docs` in order up to the first one refused as a duplicate; how many went in. */
  private insertInOrder(docs: OutboxDoc[]): Promise<number> {
    return insertedInOrder(docs, (chunk) => this.col.insertMany(chunk, { ordered: true }));
  }

  /** The endpoint's queues are gone: what this node knew of them is forgotten. */
  forget(endpointId: string): void {
    for (const key of this.tails.keys()) if (key.startsWith(`${endpointId}|`)) this.tails.delete(key);
  }
}
