// How a webhooks node turns account events into outbox rows. A logged event (it carries its event-log
// `cursor`) goes to the log reader (src/webhooks/log-tail.ts), which hands runs of them back to
// `recordLogged`; any other (a QR code, not logged) is recorded as it arrives, by the node that records
// its workspace (src/webhooks/recorder-slots.ts; while that slot changes hands, by each node that heard
// it), in its place among the logged events of that
// workspace the node knows of (LogTail.afterKnown). Rows recorded go to this node's delivery loop, and
// the holders of endpoints it does not hold are told.
import type { Logger } from "moleculer";
import { cursorOf, eventId, seqOfCursor, type EventDoc } from "../store/events-repo.ts";
import type { EndpointsRepo } from "../store/webhook-endpoints-repo.ts";
import type { OutboxRepo, RecordResult } from "../store/webhook-outbox-repo.ts";
import type { DeliveryLoop } from "./delivery-loop.ts";
import { eventIdOf, filterMatches, subjectOf } from "./events.ts";
import { TtlCache } from "../ttl-cache.ts";
import type { LogTail } from "./log-tail.ts";
import type { QueuePosition } from "./queue-cursors.ts";
import type { RecorderSlots } from "./recorder-slots.ts";
import type { EndpointTarget } from "./types.ts";

export interface EventRecorderDeps {
  endpoints: Pick<EndpointsRepo, "enabledFor">;
  outbox: Pick<OutboxRepo, "record" | "recordMany">;
  loop: Pick<DeliveryLoop, "holds" | "notify">;
  /** Tells the other webhooks nodes of rows recorded for endpoints this node does not hold. */
  tell: (rows: QueuePosition[]) => void;
  logger: Pick<Logger, "warn" | "error">;
  /** How long a workspace's endpoints are kept without reading them again. */
  endpointCacheMs: number;
}

export class EventRecorder {
  /** Per account, the tail of its recording chain: one account's events are recorded in arrival order. */
  private readonly recording = new Map<string, Promise<void>>();
  /** Enabled endpoints per workspace, read at most every `endpointCacheMs`; dropped by `forget`. */
  private readonly endpointCache: TtlCache<string, EndpointTarget[]>;
  private tail: Pick<LogTail, "offer" | "afterKnown"> | null = null;
  private slots: Pick<RecorderSlots, "holds" | "recordsUnlogged"> | null = null;

  constructor(private readonly deps: EventRecorderDeps) {
    this.endpointCache = new TtlCache(deps.endpointCacheMs);
  }

  /** The log reader and the slots, once they exist (events heard before are only recorded from the log). */
  attach(
    tail: Pick<LogTail, "offer" | "afterKnown">,
    slots: Pick<RecorderSlots, "holds" | "recordsUnlogged">,
  ): void {
    this.tail = tail;
    this.slots = slots;
  }

  /** The workspace's endpoints changed: read them again. */
  forget(workspaceId: string): void {
    this.endpointCache.forget(workspaceId);
  }

  /** Resolves once every recording under way ended. */
  async settled(): Promise<void> {
    await Promise.allSettled(this.recording.values());
  }

  /** An account event heard on the bus. */
  async onAccountEvent(event: string, payload: unknown): Promise<void> {
    if (!this.tail || !this.slots) return;
    const subject = subjectOf(payload);
    const seq = seqOfCursor((payload as { cursor?: unknown } | null)?.cursor);
    if (subject && seq !== null) {
      const { cursor: _, ...logged } = payload as Record<string, unknown>;
      this.tail.offer({
        _id: eventId(subject.workspaceId, seq),
        workspaceId: subject.workspaceId,
        seq,
        event,
        payload: logged,
        at: new Date(),
      });
      return;
    }
    if (!subject) return this.recordEvent(event, payload);
    const { workspaceId } = subject;
    const record = () => this.recordEvent(event, payload);
    // In its place among the logged events: a QR code after the `qr_scanning` status heard before it,
    // before the `authenticated` heard after it (placed before anything else is heard, so nothing
    // awaited first).
    if (this.slots.holds(workspaceId)) return this.tail.afterKnown(workspaceId, record);
    // Its slot may be changing hands: then every node that heard it records it.
    if (await this.slots.recordsUnlogged(workspaceId)) await this.tail.afterKnown(workspaceId, record);
  }

  /** A run of one workspace's logged events, recorded together (each account's in order). An event's
   * body carries its cursor; its id is that of the logged payload. */
  async recordLogged(docs: EventDoc[]): Promise<void> {
    const items: Parameters<OutboxRepo["recordMany"]>[0] = [];
    for (const doc of docs) {
      const payload = { ...(doc.payload as object), cursor: cursorOf(doc.seq) };
      const subject = subjectOf(payload);
      if (!subject) continue;
      const endpoints = await this.endpointsFor(subject.workspaceId, doc.event);
      if (endpoints.length === 0) continue;
      items.push({
        ev: { eventId: eventIdOf(doc.event, doc.payload), event: doc.event, ...subject, payload },
        endpoints,
      });
    }
    if (items.length) this.recorded(await this.deps.outbox.recordMany(items));
  }

  /** Records an event not logged. Chained per account so this node inserts one account's events in the
   * order it received them. */
  private recordEvent(event: string, payload: unknown): Promise<void> {
    const subject = subjectOf(payload);
    if (!subject) {
      this.deps.logger.warn(`webhooks: ${event} without workspaceId/accountId ignored`);
      return Promise.resolve();
    }
    const { workspaceId, accountId } = subject;
    const key = `${workspaceId}/${accountId}`;
    const record = async () => {
      const endpoints = await this.endpointsFor(workspaceId, event);
      if (endpoints.length === 0) return;
      const ev = { eventId: eventIdOf(event, payload), event, workspaceId, accountId, payload };
      this.recorded(await this.deps.outbox.record(ev, endpoints));
    };
    const tail = (this.recording.get(key) ?? Promise.resolve())
      .then(record)
      .catch((err) =>
        this.deps.logger.error(
          `webhooks: could not record ${event} of ${accountId}: ${(err as Error).message}`,
        ),
      );
    this.recording.set(key, tail);
    void tail.then(() => {
      if (this.recording.get(key) === tail) this.recording.delete(key);
    });
    return tail;
  }

  /** Rows this node recorded: its delivery loop hears of them, and the holders of the endpoints it does
   * not hold are told. */
  private recorded(results: RecordResult[]): void {
    const elsewhere = results.filter((r) => !this.deps.loop.holds(r.endpointId));
    this.deps.loop.notify(results);
    if (elsewhere.length)
      this.deps.tell(elsewhere.map(({ endpointId, accountId, seq }) => ({ endpointId, accountId, seq })));
  }

  /** The workspace's enabled endpoints that take `event`. */
  private async endpointsFor(workspaceId: string, event: string): Promise<EndpointTarget[]> {
    const docs = await this.endpointCache.get(workspaceId, (id) => this.deps.endpoints.enabledFor(id));
    return docs.filter((e) => filterMatches(e.events, event));
  }
}
