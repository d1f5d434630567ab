// The outbox (`webhook_outbox`): every event for every matching endpoint is a document here before any
// delivery is tried, so a restart loses nothing (at-least-once; the receiver deduplicates by event id).
//
// Recording is idempotent across nodes. Every webhooks node receives every broadcast and records it;
// `_id = <endpointId>:<eventId>` (plus a unique index on {eventId, endpointId}) lets exactly one insert
// win, the others get E11000. The queue position `seq` of (endpoint, account) is claimed the same way:
// a unique index on {endpointId, accountId, seq} and `seq = last + 1`, retried on a collision. Each node
// records one account's events one at a time in the order it received them, and one account's events
// come from one publisher in order, so the order of seqs follows the order of the broadcasts whichever
// node wins each insert. No step needs an atomic conditional update (FerretDB has none under concurrency).
import type { Collection, Db } from "mongodb";
import type { DeliveryStatus, EndpointDoc, OutboxDoc } from "./types.ts";

export const OUTBOX_COLLECTION = "webhook_outbox";

export interface RecordedEvent {
  eventId: string;
  event: string;
  workspaceId: string;
  accountId: string;
  payload: unknown;
}

export interface FailureUpdate {
  attempts: number;
  error: string;
  statusCode: number | null;
  /** Next attempt time, or null when the limit is reached (the row becomes `dead`). */
  nextAttemptAt: Date | null;
}

function isDuplicateKey(err: unknown): boolean {
  return (err as { code?: number })?.code === 11000;
}

export class OutboxRepo {
  readonly col: Collection<OutboxDoc>;
  constructor(
    db: Db,
    private readonly nodeId: string,
  ) {
    this.col = db.collection<OutboxDoc>(OUTBOX_COLLECTION);
  }

  async ensureIndexes(): Promise<void> {
    await this.col.createIndex({ eventId: 1, endpointId: 1 }, { unique: true });
    await this.col.createIndex({ endpointId: 1, accountId: 1, seq: 1 }, { unique: true });
    await this.col.createIndex({ status: 1, endpointId: 1 });
    await this.col.createIndex({ endpointId: 1, status: 1, createdAt: -1 });
  }

  /** Records `ev` for each endpoint; returns how many rows this call inserted (0 when other nodes won). */
  async record(ev: RecordedEvent, endpoints: EndpointDoc[]): Promise<number> {
    let inserted = 0;
    for (const endpoint of endpoints) if (await this.recordFor(ev, endpoint._id)) inserted++;
    return inserted;
  }

  private async recordFor(ev: RecordedEvent, endpointId: string): Promise<boolean> {
    const _id = `${endpointId}:${ev.eventId}`;
    for (let tries = 0; tries < 200; tries++) {
      if (await this.col.findOne({ _id }, { projection: { _id: 1 } })) return false;
      const [last] = await this.col
        .find({ endpointId, accountId: ev.accountId }, { projection: { seq: 1 } })
        .sort({ seq: -1 })
        .limit(1)
        .toArray();
      const now = new Date();
      const doc: OutboxDoc = {
        _id,
        eventId: ev.eventId,
        endpointId,
        workspaceId: ev.workspaceId,
        accountId: ev.accountId,
        event: ev.event,
        payload: ev.payload,
        seq: (last?.seq ?? 0) + 1,
        status: "pending",
        attempts: 0,
        nextAttemptAt: now,
        lastError: null,
        lastStatusCode: null,
        createdAt: now,
        deliveredAt: null,
        recordedBy: this.nodeId,
      };
      try {
        await this.col.insertOne(doc);
        return true;
      } catch (err) {
        // Either another node recorded this event (seen by the check above on the next turn) or took
        // this seq for another event of the account (the next turn takes the one after).
        if (!isDuplicateKey(err)) throw err;
      }
    }
    throw new Error(`could not record ${ev.eventId} for ${endpointId}: too many seq collisions`);
  }

  /** Endpoints with pending rows (due or not). */
  async endpointsWithPending(): Promise<string[]> {
    return (await this.col.distinct("endpointId", { status: "pending" })) as string[];
  }

  /** For each account with pending rows for `endpointId`, its first pending row (lowest seq): the only
   * row of that account that may be delivered now. */
  async heads(endpointId: string): Promise<OutboxDoc[]> {
    const accounts = (await this.col.distinct("accountId", { endpointId, status: "pending" })) as string[];
    const heads: OutboxDoc[] = [];
    for (const accountId of accounts) {
      const [head] = await this.col
        .find({ endpointId, accountId, status: "pending" })
        .sort({ seq: 1 })
        .limit(1)
        .toArray();
      if (head) heads.push(head);
    }
    return heads;
  }

  // Only the holder of the endpoint's lease writes its rows, so plain updates by _id suffice.
  async markDelivered(id: string, attempts: number, statusCode: number): Promise<void> {
    await this.col.updateOne(
      { _id: id },
      {
        $set: {
          status: "delivered",
          attempts,
          lastStatusCode: statusCode,
          lastError: null,
          deliveredAt: new Date(),
        },
      },
    );
  }

  async markFailed(id: string, f: FailureUpdate): Promise<void> {
    const $set: Partial<OutboxDoc> = {
      attempts: f.attempts,
      lastError: f.error,
      lastStatusCode: f.statusCode,
    };
    if (f.nextAttemptAt) $set.nextAttemptAt = f.nextAttemptAt;
    else $set.status = "dead";
    await this.col.updateOne({ _id: id }, { $set });
  }

  /** Deliveries of one endpoint, newest first. */
  async list(endpointId: string, status?: DeliveryStatus, limit = 100): Promise<OutboxDoc[]> {
    const filter: Record<string, unknown> = { endpointId };
    if (status) filter.status = status;
    return this.col.find(filter).sort({ createdAt: -1, seq: -1 }).limit(limit).toArray();
  }

  /** Deletes delivered and dead rows created before `olderThan` (MongoDB TTL indexes are not available on
   * FerretDB). The last row of each (endpoint, account) queue stays: the next `seq` is computed from it.
   * Idempotent, so any node may run it at any time. */
  async prune(olderThan: Date): Promise<number> {
    const done = {
      status: { $in: ["delivered", "dead"] as DeliveryStatus[] },
      createdAt: { $lt: olderThan },
    };
    const endpoints = (await this.col.distinct("endpointId", done)) as string[];
    let deleted = 0;
    for (const endpointId of endpoints) {
      const accounts = (await this.col.distinct("accountId", { ...done, endpointId })) as string[];
      for (const accountId of accounts) {
        const [last] = await this.col
          .find({ endpointId, accountId }, { projection: { seq: 1 } })
          .sort({ seq: -1 })
          .limit(1)
          .toArray();
        if (!last) continue;
        const res = await this.col.deleteMany({ ...done, endpointId, accountId, seq: { $lt: last.seq } });
        deleted += res.deletedCount;
      }
    }
    return deleted;
  }

  async removeEndpoint(endpointId: string): Promise<void> {
    await this.col.deleteMany({ endpointId });
  }
}
