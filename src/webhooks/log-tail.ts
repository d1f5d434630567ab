// A webhooks node's reader of the event log: for each workspace it reads the events after its cursor,
// in seq order, hands each to `record` (which puts it in the outbox, idempotently), then stores the
// cursor. It polls every `pollMs` and is woken early by the broadcast of a logged event, so an event is
// recorded even when no webhooks node heard its broadcast: it waits in the log until one reads it.
// Several nodes may tail the same workspace; the outbox's unique {eventId, endpointId} makes their
// recordings of one event one row, and each records one workspace's events in order.
import type { Logger } from "moleculer";
import type { EventCursorsRepo } from "../store/event-cursors-repo.ts";
import type { EventDoc, EventsRepo } from "../store/events-repo.ts";

/** How far before the previous poll a poll looks for new events. */
const RECENT_MARGIN_MS = 10_000;

export interface LogTailOptions {
  /** How often every workspace is read. @default 1000 */
  pollMs: number;
  /** Events read per query. @default 200 */
  batch?: number;
  /** How often the set of workspaces is read again from the log. @default 10 × pollMs */
  discoverMs?: number;
}

export class LogTail {
  /** Last handled seq per workspace (stored in `cursors` after each batch). */
  private readonly at = new Map<string, number>();
  /** Per workspace, the drain in progress, and whether another was asked for meanwhile. */
  private readonly draining = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private lastDiscovery = 0;
  private lastPoll = 0;
  /** The poll in progress (stop waits for it: the database client closes after this service). */
  private polling: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly log: EventsRepo,
    private readonly cursors: EventCursorsRepo,
    private readonly record: (doc: EventDoc) => Promise<void>,
    private readonly opts: LogTailOptions,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    await this.discover();
    const tick = () => {
      if (this.stopped) return;
      this.polling = this.poll();
      void this.polling.finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.opts.pollMs);
      });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.allSettled([this.polling, ...this.draining.values()]);
  }

  /** The seq this node has handled in a workspace (0: none yet). */
  position(workspaceId: string): number {
    return this.at.get(workspaceId) ?? 0;
  }

  /** A logged event was broadcast: read its workspace now rather than at the next poll. */
  wake(workspaceId: string): void {
    if (!this.at.has(workspaceId)) this.at.set(workspaceId, 0);
    void this.drain(workspaceId);
  }

  /** Reads the workspace up to what the log holds now; resolves when this node has recorded it. */
  drain(workspaceId: string): Promise<void> {
    const running = this.draining.get(workspaceId);
    if (running) {
      this.again.add(workspaceId);
      return running;
    }
    const run = (async () => {
      do {
        this.again.delete(workspaceId);
        await this.readAll(workspaceId);
      } while (this.again.has(workspaceId) && !this.stopped);
    })()
      .catch((err) => this.logger.warn(`webhooks: reading the event log of ${workspaceId} failed: ${err}`))
      .finally(() => this.draining.delete(workspaceId));
    this.draining.set(workspaceId, run);
    return run;
  }

  private async readAll(workspaceId: string): Promise<void> {
    const batch = this.opts.batch ?? 200;
    for (;;) {
      if (this.stopped) return;
      const after = this.position(workspaceId);
      const docs = await this.log.readAfter(workspaceId, after, batch);
      if (docs.length === 0) return;
      for (const doc of docs) {
        await this.record(doc);
        this.at.set(workspaceId, doc.seq);
      }
      await this.cursors.save(workspaceId, docs.at(-1)!.seq);
      if (docs.length < batch) return;
    }
  }

  private async discover(): Promise<void> {
    this.lastDiscovery = this.lastPoll = Date.now();
    const [stored, inLog] = await Promise.all([this.cursors.all(), this.log.workspaces()]);
    for (const [ws, seq] of stored) if (seq > this.position(ws)) this.at.set(ws, seq);
    for (const ws of inLog) if (!this.at.has(ws)) this.at.set(ws, 0);
  }

  /** Between discoveries only workspaces with recent events are read (one query); a discovery reads
   * every workspace, which also steps over gaps that have aged since. */
  private async poll(): Promise<void> {
    try {
      let due: string[];
      if (Date.now() - this.lastDiscovery >= (this.opts.discoverMs ?? 10 * this.opts.pollMs)) {
        await this.discover();
        due = [...this.at.keys()];
      } else {
        // The margin covers writers' clock skew and inserts that took long to commit.
        const since = new Date(this.lastPoll - RECENT_MARGIN_MS);
        due = await this.log.workspaces(since);
      }
      this.lastPoll = Date.now();
      await Promise.all(due.map((ws) => this.drain(ws)));
    } catch (err) {
      this.logger.warn(`webhooks: polling the event log failed: ${(err as Error).message}`);
    }
  }
}
