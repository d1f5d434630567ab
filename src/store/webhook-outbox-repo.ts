// The outbox (`webhook_outbox`): every event for every matching endpoint is a document here before any
// delivery is tried, so a restart loses nothing (at-least-once; the receiver deduplicates by event id).
//
// Rows live in queues, one per (endpoint, account), at consecutive positions `seq`; a row's `_id` is
// its slot `<endpointId>|<accountId>|<seq, zero-padded>`. Everything hot goes through `_id` (FerretDB's
// SQLite backend scans the collection for a filter without an `_id` equality; MongoDB would use the
// indexes either way). Recording: src/store/webhook-outbox-recorder.ts.
import { randomUUID } from "node:crypto";
import type { Collection, Db } from "mongodb";
import type { DeliveryStatus, EndpointTarget, OutboxDoc } from "./webhook-docs.ts";
import type { PagePosition } from "./page-cursor.ts";
import {
  OutboxRecorder,
  queueKey,
  slotId,
  withRetry,
  type RecordedEvent,
  type RecordResult,
} from "./webhook-outbox-recorder.ts";

export { queueKey, slotId, type RecordedEvent, type RecordResult };

export const OUTBOX_COLLECTION = "webhook_outbox";

export interface QueueHead {
  endpointId: string;
  accountId: string;
  /** Lowest pending seq of the queue. */
  seq: number;
}

export interface FailureUpdate {
  attempts: number;
  error: string;
  statusCode: number | null;
  /** Next attempt time, or null when the limit is reached (the row becomes `dead`). */
  nextAttemptAt: Date | null;
}

/** A queue with finished rows past retention: how many were found, and the first one's `_id`. */
interface FinishedInQueue {
  endpointId: string;
  accountId: string;
  rows: number;
  first: string;
}

/** Slots read by `_id` in one query at most. */
const IDS_PER_READ = 500;

/** The seq of a row from its `_id` (its slot: `<endpointId>|<accountId>|<seq, zero-padded>`). */
function seqOfSlot(id: string): number {
  return Number(id.slice(id.lastIndexOf("|") + 1));
}

export class OutboxRepo {
  readonly col: Collection<OutboxDoc>;
  private readonly recorder: OutboxRecorder;

  /** @param maxTailAgeMs see OutboxRecorder. */
  constructor(db: Db, nodeId: string, maxTailAgeMs = Infinity) {
    this.col = db.collection<OutboxDoc>(OUTBOX_COLLECTION);
    this.recorder = new OutboxRecorder(this.col, nodeId, maxTailAgeMs);
  }

  async ensureIndexes(): Promise<void> {
    await this.col.createIndex({ eventId: 1, endpointId: 1 }, { unique: true });
    await this.col.createIndex({ endpointId: 1, accountId: 1, seq: 1 });
    await this.col.createIndex({ status: 1, endpointId: 1 });
    await this.col.createIndex({ endpointId: 1, status: 1, createdAt: -1 });
  }

  /** Records `ev` for each endpoint. */
  record(ev: RecordedEvent, endpoints: EndpointTarget[]): Promise<RecordResult[]> {
    return this.recorder.record(ev, endpoints);
  }

  /** Records a run of events (in the order given) for their endpoints (OutboxRecorder.recordMany). */
  recordMany(items: { ev: RecordedEvent; endpoints: EndpointTarget[] }[]): Promise<RecordResult[]> {
    return this.recorder.recordMany(items);
  }

  /** The lowest pending seq of every queue (of all endpoints, of one, or one queue). One query, whose
   * rows are gone through as they come: only the heads are kept (a receiver down for long leaves many
   * pending rows). */
  async pendingHeads(endpointId?: string, accountId?: string): Promise<QueueHead[]> {
    const filter: Record<string, unknown> = { status: "pending" };
    if (endpointId) filter.endpointId = endpointId;
    if (accountId) filter.accountId = accountId;
    const rows = this.col.find(filter, { projection: { endpointId: 1, accountId: 1, seq: 1 } });
    const heads = new Map<string, QueueHead>();
    for await (const r of rows) {
      const key = queueKey(r.endpointId, r.accountId);
      const cur = heads.get(key);
      if (!cur || r.seq < cur.seq)
        heads.set(key, { endpointId: r.endpointId, accountId: r.accountId, seq: r.seq });
    }
    return [...heads.values()];
  }

  /** The row at a queue position, if any. */
  async at(endpointId: string, accountId: string, seq: number): Promise<OutboxDoc | null> {
    return this.byId(slotId(endpointId, accountId, seq));
  }

  // Only the holder of the endpoint's lease writes its rows, so updates go by _id. A delivered mark
  // is a fact whoever writes it; a failure is written only while the row is pending (fenced).
  /** Marks rows delivered, those with the same attempt count and status code in one update (`_id`
   * `$in` the list: one command, by the `_id` index). */
  async markDelivered(marks: { id: string; attempts: number; statusCode: number }[]): Promise<void> {
    const groups = new Map<string, { attempts: number; statusCode: number; ids: string[] }>();
    for (const m of marks) {
      const key = `${m.attempts}|${m.statusCode}`;
      let group = groups.get(key);
      if (!group) groups.set(key, (group = { attempts: m.attempts, statusCode: m.statusCode, ids: [] }));
      group.ids.push(m.id);
    }
    for (const { attempts, statusCode, ids } of groups.values()) {
      await withRetry(() =>
        this.col.updateMany(
          { _id: { $in: ids } },
          {
            $set: {
              status: "delivered",
              attempts,
              lastStatusCode: statusCode,
              lastError: null,
              deliveredAt: new Date(),
            },
          },
        ),
      );
    }
  }

  /** Writes a failed attempt, only on a row still pending: false when it is not (a late write of a
   * node that lost the endpoint must not turn a row its next holder delivered `dead`, or rewind it). */
  async markFailed(id: string, f: FailureUpdate): Promise<boolean> {
    const $set: Partial<OutboxDoc> = {
      attempts: f.attempts,
      lastError: f.error,
      lastStatusCode: f.statusCode,
    };
    if (f.nextAttemptAt) $set.nextAttemptAt = f.nextAttemptAt;
    else $set.status = "dead";
    const res = await withRetry(() => this.col.updateOne({ _id: id, status: "pending" }, { $set }));
    return res.matchedCount === 1;
  }

  /** A dead row of the endpoint pending again, attempts from 0, due now (the row as it is then); null
   * when there is no such dead row. Written by whichever node was asked: a dead row has no attempt
   * under way, and its holder only writes rows still pending. */
  async resend(endpointId: string, id: string): Promise<OutboxDoc | null> {
    const resendToken = randomUUID();
    return withRetry(async (attempt) => {
      const row = await this.col.findOneAndUpdate(
        { _id: id, endpointId, status: "dead" },
        { $set: { status: "pending", attempts: 0, nextAttemptAt: new Date(), resendToken } },
        { returnDocument: "after" },
      );
      // No dead row on a try after one that failed: that one's write may have landed, its answer lost.
      if (row || attempt === 1) return row;
      return this.col.findOne({ _id: id, endpointId, resendToken });
    });
  }

  async byId(id: string): Promise<OutboxDoc | null> {
    return this.col.findOne({ _id: id });
  }

  /** Deliveries of one endpoint, newest first (created, then `_id`, which orders a queue by `seq`). */
  async list(endpointId: string, status?: DeliveryStatus, limit = 100): Promise<OutboxDoc[]> {
    return (await this.page(endpointId, status, limit)).docs;
  }

  /** Up to `limit` deliveries of an endpoint after `after` (in list order), and whether more follow. */
  async page(
    endpointId: string,
    status: DeliveryStatus | undefined,
    limit: number,
    after?: PagePosition,
  ): Promise<{ docs: OutboxDoc[]; more: boolean }> {
    const filter: Record<string, unknown> = { endpointId };
    if (status) filter.status = status;
    if (after)
      filter.$or = [{ createdAt: { $lt: after.at } }, { createdAt: after.at, _id: { $lt: after.id } }];
    const docs = await this.col
      .find(filter)
      .sort({ createdAt: -1, _id: -1 })
      .limit(limit + 1)
      .toArray();
    return { docs: docs.slice(0, limit), more: docs.length > limit };
  }

  /** Deletes delivered and dead rows created before `olderThan` (MongoDB TTL indexes are not available on
   * FerretDB). The last row of each queue stays: the next `seq` is computed from it (a queue whose only
   * such row is its last is not visited). Idempotent, so any node may run it at any time. */
  async prune(olderThan: Date): Promise<number> {
    const done = {
      status: { $in: ["delivered", "dead"] as DeliveryStatus[] },
      createdAt: { $lt: olderThan },
    };
    // The queues with finished rows, one status at a time: a plain string equality is searched in the
    // status index on FerretDB (our build), where `$in` goes through every row kept. The deletes
    // below are narrowed by their queue's `endpointId` and `accountId` the same way.
    const queues = new Map<string, FinishedInQueue>();
    for (const status of done.status.$in) {
      const rows = await this.col
        .find({ status, createdAt: done.createdAt }, { projection: { endpointId: 1, accountId: 1 } })
        .toArray();
      for (const r of rows) {
        const key = queueKey(r.endpointId, r.accountId);
        const seen = queues.get(key);
        if (seen) seen.rows++;
        else queues.set(key, { endpointId: r.endpointId, accountId: r.accountId, rows: 1, first: r._id });
      }
    }
    for (const key of await this.dormant(queues)) queues.delete(key);
    let deleted = 0;
    for (const { endpointId, accountId } of queues.values()) {
      const [last] = await this.col
        .find({ endpointId, accountId }, { projection: { seq: 1 } })
        .sort({ seq: -1 })
        .limit(1)
        .toArray();
      if (!last) continue;
      const res = await this.col.deleteMany({ ...done, endpointId, accountId, seq: { $lt: last.seq } });
      deleted += res.deletedCount;
    }
    return deleted;
  }

  /** The queues (by key) whose only finished row found is their last row: nothing of theirs may go, so
   * a prune skips them (a queue with no new event keeps its last row for ever: without this every
   * prune read it and tried a delete, two round trips per quiet queue). A row is the last when the
   * slot after it is free: one read by `_id` for up to `IDS_PER_READ` queues. */
  private async dormant(queues: Map<string, FinishedInQueue>): Promise<string[]> {
    const lone = [...queues].filter(([, q]) => q.rows === 1);
    const next = lone.map(([, q]) => slotId(q.endpointId, q.accountId, seqOfSlot(q.first) + 1));
    const taken = new Set<string>();
    for (let i = 0; i < next.length; i += IDS_PER_READ) {
      const ids = next.slice(i, i + IDS_PER_READ);
      for (const r of await this.col.find({ _id: { $in: ids } }, { projection: { _id: 1 } }).toArray())
        taken.add(r._id);
    }
    return lone.filter((_, i) => !taken.has(next[i])).map(([key]) => key);
  }

  async removeEndpoint(endpointId: string): Promise<void> {
    await this.col.deleteMany({ endpointId });
    this.recorder.forget(endpointId);
  }
}
