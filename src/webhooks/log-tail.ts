// A webhooks node's reader of the event log: for each workspace it reads the events after its cursor,
// in seq order, hands them to `record` a run at a time (which puts them in the outbox in that order,
// idempotently), then stores the cursor. It polls every `pollMs` and is woken early by the broadcast
// of a logged event, so an event is recorded even when no webhooks node heard its broadcast: it waits
// in the log until one reads it.
// A broadcast carries the whole event: when it is the next one this node expects (its seq follows the
// node's position), it is recorded from the broadcast without reading the log (`offer`). Anything else
// (a gap, a node that just started) is read from the log, as is every workspace whose next event is
// found stored at a poll, so a missed broadcast waits at most `pollMs`. A poll looks by `_id` only (the
// event after each position): on FerretDB any other filter scans the whole log.
// Several nodes tail the log, but one records a workspace at a time (`records`, src/webhooks/recorder-
// slots.ts): the others neither read nor keep its events. The position stored after each run (one per
// workspace, shared by the nodes) is where the next recorder starts (`adopt`). Should two record at
// once, the outbox's unique {eventId, endpointId} makes their recordings of one event one row, and each
// records one workspace's events in order.
// An event that is not logged (a QR code) goes in its place among them (`afterKnown`): after every
// logged event this node knew of when it arrived, before any later one.
import type { Logger } from "moleculer";
import type { EventCursorsRepo } from "../store/event-cursors-repo.ts";
import type { EventDoc, EventsRepo } from "../store/events-repo.ts";

/** Offered events kept per workspace at most. */
const OFFERED_MAX = 10_000;

/** Workspaces looked at together by a poll. */
const PROBES_AT_ONCE = 32;

/** An event that is not logged, waiting for its place among the logged ones (`afterKnown`). */
interface Unlogged {
  /** The last logged event to record before it. */
  upTo: number;
  record: () => Promise<void>;
  done: () => void;
}

export interface LogTailOptions {
  /** How often every workspace is read. @default 1000 */
  pollMs: number;
  /** Events read per query. @default 200 */
  batch?: number;
  /** How often the set of workspaces is read again from the log. @default 10 × pollMs */
  discoverMs?: number;
  /** Whether this node records the workspace now. @default always */
  records?: (workspaceId: string) => boolean;
}

export class LogTail {
  /** Last handled seq per workspace (stored in `cursors` after each batch). */
  private readonly at = new Map<string, number>();
  /** Per workspace, the drain in progress, and whether another was asked for meanwhile. */
  private readonly draining = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  /** Per workspace, events heard on the bus and not yet recorded, in arrival order. */
  private readonly offered = new Map<string, EventDoc[]>();
  /** Per workspace, how many events were offered so far (a drain sees whether any came meanwhile). */
  private readonly offers = new Map<string, number>();
  /** Per workspace, the highest seq heard on the bus, recorded by this node or not. */
  private readonly heard = new Map<string, number>();
  /** Per workspace, events not logged waiting for their place, in arrival order (`upTo` ascending). */
  private readonly unlogged = new Map<string, Unlogged[]>();
  private timer: NodeJS.Timeout | null = null;
  private lastDiscovery = 0;
  /** The poll in progress (stop waits for it: the database client closes after this service). */
  private polling: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly log: EventsRepo,
    private readonly cursors: EventCursorsRepo,
    /** Records a run of one workspace's events, in seq order. */
    private readonly record: (docs: EventDoc[]) => Promise<void>,
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

  private records(workspaceId: string): boolean {
    return this.opts.records?.(workspaceId) ?? true;
  }

  /** Moves each workspace's position up to the stored one (where another node stopped recording). */
  async adopt(): Promise<void> {
    for (const [ws, seq] of await this.cursors.all()) if (seq > this.position(ws)) this.at.set(ws, seq);
  }

  /** The seq this node has handled in a workspace (0: none yet). */
  position(workspaceId: string): number {
    return this.at.get(workspaceId) ?? 0;
  }

  /** A logged event was broadcast: read its workspace now rather than at the next poll. */
  wake(workspaceId: string): void {
    this.know(workspaceId);
    void this.drain(workspaceId);
  }

  /** Polls look at the workspace from now on (from the start of its log, until a position is known). */
  private know(workspaceId: string): void {
    if (!this.at.has(workspaceId)) this.at.set(workspaceId, 0);
  }

  /** A logged event heard on the bus: recorded from here when it is the next one, else read from the log. */
  offer(doc: EventDoc): void {
    this.heard.set(doc.workspaceId, Math.max(this.heard.get(doc.workspaceId) ?? 0, doc.seq));
    if (!this.records(doc.workspaceId)) {
      // Known from now on, so that polls read it as soon as this node takes over its slot: a
      // workspace first heard while another node recorded it (or while its slot changed hands) would
      // otherwise wait for the next discovery (`discoverMs`; 10 s by default).
      this.know(doc.workspaceId);
      return;
    }
    let queue = this.offered.get(doc.workspaceId);
    if (!queue) this.offered.set(doc.workspaceId, (queue = []));
    // Bounded: what falls out is read from the log instead.
    if (queue.length >= OFFERED_MAX) queue.shift();
    queue.push(doc);
    this.offers.set(doc.workspaceId, (this.offers.get(doc.workspaceId) ?? 0) + 1);
    // A drain in progress takes it before it ends (it looks at what was offered meanwhile).
    if (!this.draining.has(doc.workspaceId)) this.wake(doc.workspaceId);
  }

  /** Offered events that follow `after` without a gap, the older ones dropped. */
  private takeOffered(workspaceId: string, after: number, max: number): EventDoc[] {
    const queue = this.offered.get(workspaceId);
    if (!queue) return [];
    const fresh = queue.filter((d) => d.seq > after).sort((a, b) => a.seq - b.seq);
    const taken: EventDoc[] = [];
    for (const doc of fresh) {
      if (taken.length === max || doc.seq !== after + taken.length + 1) break;
      taken.push(doc);
    }
    const rest = fresh.slice(taken.length);
    if (rest.length) this.offered.set(workspaceId, rest);
    else this.offered.delete(workspaceId);
    return taken;
  }

  /**
   * Records an event that is not logged (`record`: a QR code) in its place among the workspace's logged
   * events: after every one this node knows of now (its position, and those heard on the bus, such as
   * the `qr_scanning` status before a QR code), before any it hears of later (the `authenticated` after
   * it), however long the log takes to read. A logged event this node neither heard nor read yet goes
   * after it: nothing tells it apart from one logged later. Resolves once `record` ran. A node that
   * does not record the workspace (or stops) runs `record` at once.
   */
  afterKnown(workspaceId: string, record: () => Promise<void>): Promise<void> {
    const upTo = Math.max(this.position(workspaceId), this.heard.get(workspaceId) ?? 0);
    return new Promise<void>((done) => {
      let queue = this.unlogged.get(workspaceId);
      if (!queue) this.unlogged.set(workspaceId, (queue = []));
      queue.push({ upTo, record, done });
      void this.drain(workspaceId);
    });
  }

  /** Records, in arrival order, the events not logged that wait for no logged event past `upTo`. */
  private async recordUnlogged(workspaceId: string, upTo: number): Promise<void> {
    for (;;) {
      const queue = this.unlogged.get(workspaceId);
      const next = queue?.[0];
      if (!queue || !next || next.upTo > upTo) return;
      queue.shift();
      if (!queue.length) this.unlogged.delete(workspaceId);
      await next
        .record()
        .catch((err: Error) => this.logger.warn(`webhooks: recording failed: ${err.message}`));
      next.done();
    }
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
        try {
          await this.readAll(workspaceId);
        } finally {
          // What a read that failed (or a node that stops, or no longer records the workspace) left
          // waiting goes in now, as it would have after a drain before.
          await this.recordUnlogged(workspaceId, Infinity);
        }
      } while (this.again.has(workspaceId) && !this.stopped);
    })()
      .catch((err) => this.logger.warn(`webhooks: reading the event log of ${workspaceId} failed: ${err}`))
      .finally(() => this.draining.delete(workspaceId));
    this.draining.set(workspaceId, run);
    return run;
  }

  /** Records what follows this node's position: offered events while they follow without a gap, else
   * the log's. It ends once nothing is left that it knows of: no full batch just read, no offered event
   * left over, none offered while it worked, no event not logged waiting; and once its position is
   * stored. It reads no further than the place of the first event not logged that waits, and records
   * that event once it got there (or found nothing more up to there in the log). The position is stored
   * after each run, while the next run is recorded (in a burst the store's single writer made every
   * run wait for it): a node that dies meanwhile leaves an older position, and the next recorder
   * records those events again, which the outbox takes as already recorded. */
  private async readAll(workspaceId: string): Promise<void> {
    const batch = this.opts.batch ?? 200;
    let saving = Promise.resolve();
    // One save at a time, in order, so a stored position never moves back. A failed one is only
    // reported: the next run's stores a later position.
    const save = (seq: number) => {
      saving = saving
        .then(() => this.cursors.save(workspaceId, seq))
        .catch((err) =>
          this.logger.warn(
            `webhooks: storing the log position of ${workspaceId} failed: ${(err as Error).message}`,
          ),
        );
    };
    try {
      for (;;) {
        if (this.stopped) return;
        if (!this.records(workspaceId)) {
          this.offered.delete(workspaceId);
          return;
        }
        await this.recordUnlogged(workspaceId, this.position(workspaceId));
        const offers = this.offers.get(workspaceId) ?? 0;
        const after = this.position(workspaceId);
        const upTo = this.unlogged.get(workspaceId)?.[0]?.upTo ?? Infinity;
        const room = Math.min(batch, upTo - after);
        const offered = this.takeOffered(workspaceId, after, room);
        const docs = (offered.length ? offered : await this.log.readAfter(workspaceId, after, room)).filter(
          (d) => d.seq <= upTo,
        );
        if (docs.length) {
          await this.record(docs);
          this.at.set(workspaceId, docs.at(-1)!.seq);
          save(docs.at(-1)!.seq);
        } else if (upTo !== Infinity) {
          // The log holds nothing more up to its place now (a gap before it).
          await this.recordUnlogged(workspaceId, upTo);
          continue;
        }
        const more = offered.length ? this.offered.has(workspaceId) : docs.length === room;
        const waiting = () => this.unlogged.has(workspaceId);
        if (more || waiting() || (this.offers.get(workspaceId) ?? 0) !== offers) continue;
        // Events offered while the position is stored find this drain still running (they do not
        // start another): looked at before it ends.
        await saving;
        if ((this.offers.get(workspaceId) ?? 0) === offers && !waiting()) return;
      }
    } finally {
      await saving;
    }
  }

  private async discover(): Promise<void> {
    this.lastDiscovery = Date.now();
    const [, inLog] = await Promise.all([this.adopt(), this.log.workspaces()]);
    for (const ws of inLog) this.know(ws);
  }

  /** Reads every workspace whose next event is stored. A discovery (every `discoverMs`) also reads the
   * set of workspaces again, and looks past an empty position after each one (a writer that died
   * between taking a position and writing it): the read steps over such a gap once it has aged. */
  private async poll(): Promise<void> {
    try {
      const discovering = Date.now() - this.lastDiscovery >= (this.opts.discoverMs ?? 10 * this.opts.pollMs);
      if (discovering) await this.discover();
      const idle = [...this.at.keys()].filter((ws) => !this.draining.has(ws) && this.records(ws));
      const due: string[] = [];
      for (let i = 0; i < idle.length && !this.stopped; i += PROBES_AT_ONCE) {
        const chunk = idle.slice(i, i + PROBES_AT_ONCE);
        const behind = await Promise.all(
          chunk.map(async (ws) => {
            const at = this.position(ws);
            return discovering ? (await this.log.probeFrom(ws, at)) > at : this.log.has(ws, at + 1);
          }),
        );
        chunk.forEach((ws, k) => behind[k] && due.push(ws));
      }
      // Not awaited: a busy workspace's drain lasts until it has a quiet moment, and the next poll
      // would wait for it with every other workspace. A workspace still draining is skipped by polls.
      for (const ws of due) void this.drain(ws);
    } catch (err) {
      this.logger.warn(`webhooks: polling the event log failed: ${(err as Error).message}`);
    }
  }
}
