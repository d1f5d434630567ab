// Where each reader of the event log stands (`event_cursors`): `_id` is `<reader>|<workspaceId>`, `seq`
// the last event it has handled. Readers that may run on several nodes at once (webhooks) handle events
// idempotently, so a cursor that another node moves back a little only repeats work.
import type { Collection, Db } from "mongodb";
import { retryTransient, upsertById } from "./mongo.ts";

export const EVENT_CURSORS_COLLECTION = "event_cursors";

export interface EventCursorDoc {
  _id: string;
  reader: string;
  workspaceId: string;
  seq: number;
  updatedAt: Date;
}

export class EventCursorsRepo {
  readonly col: Collection<EventCursorDoc>;

  constructor(
    db: Db,
    private readonly reader: string,
  ) {
    this.col = db.collection<EventCursorDoc>(EVENT_CURSORS_COLLECTION);
  }

  private idOf(workspaceId: string): string {
    return `${this.reader}|${workspaceId}`;
  }

  /** The stored cursors of this reader, by workspace. */
  async all(): Promise<Map<string, number>> {
    const rows = await retryTransient(() => this.col.find({ reader: this.reader }).toArray());
    return new Map(rows.map((r) => [r.workspaceId, r.seq]));
  }

  async save(workspaceId: string, seq: number): Promise<void> {
    await upsertById(() =>
      this.col.updateOne(
        { _id: this.idOf(workspaceId) },
        { $set: { reader: this.reader, workspaceId, seq, updatedAt: new Date() } },
        { upsert: true },
      ),
    );
  }
}
