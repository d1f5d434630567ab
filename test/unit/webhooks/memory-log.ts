// An in-memory event log and cursor store for the webhooks unit specs of the log reader
// (src/webhooks/log-tail.ts): what EventsRepo and EventCursorsRepo answer, without a database.
import { eventId, type EventDoc } from "../../../src/store/events-repo.ts";

/** A logged `account.status` event of workspace `ws` at `seq`. */
export function loggedDoc(seq: number, ws = "ws"): EventDoc {
  return {
    _id: eventId(ws, seq),
    workspaceId: ws,
    seq,
    event: "account.status",
    payload: { n: seq },
    at: new Date(),
  };
}

export class MemoryLog {
  docs: EventDoc[] = [];
  reads = 0;
  /** The workspace of each read. */
  readOf: string[] = [];
  /** How long a read takes (it answers what the log holds when it ends). @default 0 */
  readDelayMs = 0;
  async readAfter(ws: string, after: number, limit: number): Promise<EventDoc[]> {
    this.reads++;
    this.readOf.push(ws);
    if (this.readDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.readDelayMs));
    return this.docs.filter((d) => d.workspaceId === ws && d.seq > after).slice(0, limit);
  }
  async has(ws: string, seq: number): Promise<boolean> {
    return this.docs.some((d) => d.workspaceId === ws && d.seq === seq);
  }
  async probeFrom(ws: string, from: number): Promise<number> {
    return Math.max(from, ...this.docs.filter((d) => d.workspaceId === ws).map((d) => d.seq));
  }
  async workspaces(): Promise<string[]> {
    return [...new Set(this.docs.map((d) => d.workspaceId))];
  }
}

/** Positions stored per workspace (`saved`), and what another node stored (`stored`, read by adopt). */
export class MemoryCursors {
  saved = new Map<string, number>();
  stored = new Map<string, number>();
  async save(ws: string, seq: number): Promise<void> {
    this.saved.set(ws, seq);
  }
  async all(): Promise<Map<string, number>> {
    return new Map(this.stored);
  }
}
