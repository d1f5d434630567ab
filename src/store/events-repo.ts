// The event log (`events`): every account event (except QR codes, which expire within a minute) is a
// document here before it is broadcast, so webhooks and sockets can read what they did not hear.
//
// Each workspace has its own sequence 1, 2, 3…; a document's `_id` is `<workspaceId>|<seq, zero-padded>`,
// so a workspace's events sort by `_id` and the unique `_id` refuses a second event at one position.
// A writer keeps the next seq per workspace in memory (found from the highest stored seq the first
// time); when an insert is refused because another writer (another node, or a gateway recording
// `account.created`/`account.deleted`) took the position, it finds the highest again and retries. No
// conditional update is needed (FerretDB has none that is atomic under concurrency).
// The highest seq is found by probing positions by `_id` (exponential, then binary search) from the
// workspace's head as last pruned (`event_heads`): FerretDB answers an `_id` equality from its primary
// key but scans the whole collection for a range or a sort, which made every new workspace's first
// event cost a scan of every workspace's events.
//
// A reader must not step over a position whose insert is still in flight (writer A took 5, writer B
// took 6 and committed first): `readAfter` stops at a gap until the event after it is `gapWaitMs` old;
// a gap that old is a writer that died between allocating and inserting, and will never fill.
import { randomUUID } from "node:crypto";
import type { Collection, Db } from "mongodb";
import { BoundedMap } from "../bounded-map.ts";
import { idsWithToken, InsertBatcher } from "./insert-batch.ts";
import { insertedInOrder, isDuplicateKey, retryTransient, storedBefore, upsertById } from "./mongo.ts";

export const EVENTS_COLLECTION = "events";

/** Events one write of a workspace carries at most (in ordered inserts of ORDERED_INSERT_MAX). */
const APPEND_BATCH = 200;

interface PendingAppend {
  event: string;
  payload: unknown;
  key?: string;
  resolve: (doc: EventDoc) => void;
  reject: (err: unknown) => void;
}

export const EVENT_HEADS_COLLECTION = "event_heads";

/** A workspace's last event when the log was last pruned: nothing at or above it was deleted since. */
interface EventHeadDoc {
  _id: string;
  seq: number;
}

export interface EventDoc {
  _id: string;
  workspaceId: string;
  seq: number;
  event: string;
  /** The broadcast payload, without its `cursor`. */
  payload: unknown;
  at: Date;
  /** The token of the insert that wrote it: an insert tried again after a transient error finds the
   * rows its first try wrote, refused as duplicates, and knows them for its own. */
  w?: string;
  /** The key its writer gave the event (`append`), the same for every attempt at logging it. */
  k?: string;
}

/** How a client names a position in a workspace's log: the seq in decimal ("0": before the first). */
export type Cursor = string;
export const CURSOR_PATTERN = /^(0|[1-9][0-9]{0,14})$/;

export function cursorOf(seq: number): Cursor {
  return String(seq);
}

/** The seq a cursor names, or null when it is not a cursor. */
export function seqOfCursor(cursor: unknown): number | null {
  if (typeof cursor === "number" && Number.isSafeInteger(cursor) && cursor >= 0) return cursor;
  if (typeof cursor !== "string" || !CURSOR_PATTERN.test(cursor)) return null;
  return Number(cursor);
}

export function eventId(workspaceId: string, seq: number): string {
  return `${workspaceId}|${String(seq).padStart(15, "0")}`;
}

/** `_id` bounds of one workspace (`|` sorts before every digit-free suffix that could follow). */
function rangeOf(workspaceId: string, afterSeq: number): { $gt: string; $lt: string } {
  return { $gt: eventId(workspaceId, afterSeq), $lt: `${workspaceId}|~` };
}

export interface EventsRepoOptions {
  /** How long a reader waits at a gap before stepping over it. @default 5000 */
  gapWaitMs?: number;
  /** How long events are kept (EVENTS_RETENTION_MS; 0: for ever): a writer forgets its next position
   * in a workspace after half of it idle. @default 0 */
  retentionMs?: number;
}

/** A writer forgets its next position in a workspace idle this long at most (memory stays bounded). */
const POSITION_IDLE_MS = 10 * 60_000;

/** How long `expectEmpty` is taken at its word (the create that said so is under way). */
const EXPECTED_EMPTY_MS = 10_000;

export class EventsRepo {
  readonly col: Collection<EventDoc>;
  private readonly heads: Collection<EventHeadDoc>;
  private readonly gapWaitMs: number;
  /** Next seq per workspace, as this writer knows it, and when it last wrote there. Forgotten after
   * `positionIdleMs` idle: positions under it may have been pruned since (another writer's events,
   * older than the retention), and an insert at a pruned position succeeds below the log's top, where
   * no reader past it ever looks. */
  private readonly next = new Map<string, { seq: number; at: number }>();
  private readonly positionIdleMs: number;
  private positionWrites = 0;
  /** Per workspace, appends waiting for the write in flight; at most one write per workspace at a time,
   * so this writer's events commit in seq order. */
  private readonly waiting = new Map<string, PendingAppend[]>();
  private readonly writing = new Set<string>();
  /** Lone appends of different workspaces that arrive together are written together (InsertBatcher). */
  private readonly inserts: InsertBatcher<EventDoc>;
  /** Workspaces said to have no account event yet (`expectEmpty`), and since when. */
  private readonly expectedEmpty = new BoundedMap<string, number>(1000);
  /** Per event key, the position an append of it failed at without knowing whether it landed (its
   * reply lost, then the database away): an attempt again with the key looks there first. */
  private readonly unsure = new BoundedMap<string, string>(10_000);

  constructor(db: Db, options: EventsRepoOptions = {}) {
    this.col = db.collection<EventDoc>(EVENTS_COLLECTION);
    this.heads = db.collection<EventHeadDoc>(EVENT_HEADS_COLLECTION);
    this.gapWaitMs = options.gapWaitMs ?? 5000;
    const retention = options.retentionMs ?? 0;
    this.positionIdleMs = retention > 0 ? Math.min(retention / 2, POSITION_IDLE_MS) : POSITION_IDLE_MS;
    // A write the server refused while busy did not happen: trying again is safe.
    this.inserts = new InsertBatcher(this.col);
  }

  async ensureIndexes(): Promise<void> {
    await this.col.createIndex({ workspaceId: 1, seq: -1 });
    await this.col.createIndex({ at: 1 });
  }

  /** The highest stored seq of a workspace (0 when it has none), by a range read (a scan on FerretDB):
   * for pruning and tests, not the write path. */
  async highest(workspaceId: string): Promise<number> {
    const [last] = await retryTransient(() =>
      this.col
        .find({ _id: rangeOf(workspaceId, 0) }, { projection: { seq: 1 } })
        .sort({ _id: -1 })
        .limit(1)
        .toArray(),
    );
    return last?.seq ?? 0;
  }

  /** Whether the workspace's position `seq` is stored (by `_id`). */
  async has(workspaceId: string, seq: number): Promise<boolean> {
    if (seq <= 0) return true;
    const doc = await retryTransient(() =>
      this.col.findOne({ _id: eventId(workspaceId, seq) }, { projection: { _id: 1 } }),
    );
    return doc !== null;
  }

  /**
   * The highest stored seq at or above `from` (a position known to be stored, or 0), by `_id` lookups
   * only. Positions a dead writer left empty (gaps) are rare and short; three positions past the first
   * empty one are looked at too, so a probe does not stop in one and hand out a position below the top.
   */
  async probeFrom(workspaceId: string, from: number): Promise<number> {
    let lo = from;
    for (;;) {
      let step = 1;
      let hi = lo + 1;
      while (await this.has(workspaceId, hi)) {
        lo = hi;
        step *= 2;
        hi = lo + step;
      }
      while (hi - lo > 1) {
        const mid = Math.floor((lo + hi) / 2);
        if (await this.has(workspaceId, mid)) lo = mid;
        else hi = mid;
      }
      // Looked at together (one round trip); the lowest one stored is where probing goes on.
      const past = [lo + 2, lo + 3, lo + 4];
      const stored = await Promise.all(past.map((seq) => this.has(workspaceId, seq)));
      const beyond = past.find((_, i) => stored[i]);
      if (beyond === undefined) return lo;
      lo = beyond;
    }
  }

  /** The workspace's newest logged seq (0 when none), by `_id` lookups only (as the writers find it). */
  async top(workspaceId: string): Promise<number> {
    return (await this.firstFree(workspaceId)) - 1;
  }

  /** Where probing starts: the head recorded by the last prune (0 before any). */
  private async headOf(workspaceId: string): Promise<number> {
    const head = await retryTransient(() => this.heads.findOne({ _id: workspaceId }));
    return head?.seq ?? 0;
  }

  /** Writes an event at the workspace's next position and returns its document. Appends that arrive
   * while the workspace's previous write is in flight go out together, at consecutive positions, in
   * ordered inserts of up to 100 (FerretDB commits each command on its own: one command for many).
   * `key` names the event across attempts: an append that failed not knowing whether it landed, tried
   * again with its key, finds it stored instead of logging it twice. */
  async append(workspaceId: string, event: string, payload: unknown, key?: string): Promise<EventDoc> {
    const tried = key === undefined ? undefined : this.unsure.get(key);
    if (key !== undefined && tried !== undefined) {
      const landed = await retryTransient(() => this.col.findOne({ _id: tried }));
      this.unsure.delete(key);
      if (landed && landed.k === key) return landed;
    }
    return new Promise((resolve, reject) => {
      let queue = this.waiting.get(workspaceId);
      if (!queue) this.waiting.set(workspaceId, (queue = []));
      queue.push({ event, payload, key, resolve, reject });
      if (!this.writing.has(workspaceId)) void this.pump(workspaceId);
    });
  }

  private async pump(workspaceId: string): Promise<void> {
    this.writing.add(workspaceId);
    try {
      for (;;) {
        const queue = this.waiting.get(workspaceId);
        if (!queue?.length) {
          this.waiting.delete(workspaceId);
          return;
        }
        const batch = queue.splice(0, APPEND_BATCH);
        await this.insertBatch(workspaceId, batch).catch((err: unknown) => {
          for (const a of batch) a.reject(err);
        });
      }
    } finally {
      this.writing.delete(workspaceId);
    }
  }

  /**
   * The next free position of a workspace this writer knows nothing of. Its head and its first
   * positions are read at once, so a new workspace (no head, nothing stored: the first event of an
   * account just created) costs one round trip; anything stored is probed as usual from the head.
   */
  private async firstFree(workspaceId: string): Promise<number> {
    const [head, stored] = await Promise.all([
      this.headOf(workspaceId),
      Promise.all([1, 2, 3, 4].map((seq) => this.has(workspaceId, seq))),
    ]);
    // What probeFrom(0) finds when none of 1–4 is stored (a gap at 1 is looked past up to 4).
    if (head === 0 && !stored.some(Boolean)) return 1;
    return (await this.probeFrom(workspaceId, head)) + 1;
  }

  /**
   * The caller knows the workspace had no account until now (its first account is being created: its
   * tally's first version, which a workspace with a pruned log has had since TallyRepo.seedOnce), so
   * it has no event and no head: its first append here reads nothing and tries position 1. A position
   * taken after all (a concurrent writer) is refused as a duplicate and probed for, as always. Used
   * within EXPECTED_EMPTY_MS.
   */
  expectEmpty(workspaceId: string): void {
    if (this.next.has(workspaceId)) return;
    this.expectedEmpty.set(workspaceId, Date.now());
  }

  /** This writer's next position in the workspace, unless it has been idle there too long to trust. */
  private positionIn(workspaceId: string): number | undefined {
    const position = this.next.get(workspaceId);
    if (position && Date.now() - position.at <= this.positionIdleMs) return position.seq;
    this.next.delete(workspaceId);
    return undefined;
  }

  private keepPosition(workspaceId: string, seq: number): void {
    // Re-inserted, so the map runs from the least to the most recently written workspace.
    this.next.delete(workspaceId);
    this.next.set(workspaceId, { seq, at: Date.now() });
    if (++this.positionWrites % 1000 !== 0) return;
    const idleSince = Date.now() - this.positionIdleMs;
    for (const [ws, position] of this.next) {
      if (position.at >= idleSince) break;
      this.next.delete(ws);
    }
  }

  /** Where a workspace this writer has no position for goes next. */
  private async nextFree(workspaceId: string): Promise<number> {
    const since = this.expectedEmpty.get(workspaceId);
    this.expectedEmpty.delete(workspaceId);
    if (since === undefined || Date.now() - since > EXPECTED_EMPTY_MS) return this.firstFree(workspaceId);
    return 1;
  }

  /** Inserts the batch in order from the next free position; the part a concurrent writer's event
   * refused goes after everything stored. Settles each append it wrote. */
  private async insertBatch(workspaceId: string, batch: PendingAppend[]): Promise<void> {
    let seq = this.positionIn(workspaceId) ?? (await this.nextFree(workspaceId));
    let done = 0;
    while (done < batch.length) {
      const at = new Date();
      const w = randomUUID();
      const docs: EventDoc[] = batch.slice(done).map((a, k) => ({
        _id: eventId(workspaceId, seq + k),
        workspaceId,
        seq: seq + k,
        event: a.event,
        payload: a.payload,
        at,
        w,
        ...(a.key === undefined ? {} : { k: a.key }),
      }));
      /** Settles the first `n` appends of this try as logged. */
      const settle = (n: number) => docs.slice(0, n).forEach((doc, k) => batch[done + k].resolve(doc));
      let inserted: number;
      try {
        // One event goes with other workspaces' (unordered: it is alone in its workspace); several of
        // one workspace go in order, so a refused position stops the rest.
        inserted =
          docs.length === 1
            ? await this.inserts.insert(docs[0]).then(
                () => 1,
                (err: unknown) => {
                  // The batcher answers a lone insert with that document's own error.
                  if (isDuplicateKey(err)) return 0;
                  throw err;
                },
              )
            : await this.insertRun(docs, w);
      } catch (err) {
        // Unknown what landed past the commands that went through (those are settled as logged): the
        // next append reads the highest again.
        this.next.delete(workspaceId);
        const stored = storedBefore(err);
        settle(stored);
        docs.slice(stored).forEach((doc, k) => {
          const key = batch[done + stored + k].key;
          if (key !== undefined) this.unsure.set(key, doc._id);
        });
        throw err;
      }
      settle(inserted);
      // The position refused may hold this very event: an earlier try of it, reported failed, whose
      // write committed late. It is logged there.
      const refused = docs[inserted];
      if (refused?.k !== undefined) {
        const occupant = await retryTransient(() => this.col.findOne({ _id: refused._id }));
        if (occupant?.k === refused.k) batch[done + inserted++].resolve(occupant);
      }
      done += inserted;
      seq += inserted;
      this.keepPosition(workspaceId, seq);
      // Another writer took this position (or a try that failed left only part of this insert): go past
      // everything stored after this writer's last position.
      if (done < batch.length) seq = (await this.probeFrom(workspaceId, seq - 1)) + 1;
    }
  }

  /**
   * Inserts a run of one workspace's events in order; how many went in before a refused position. The
   * batcher recognises its own rows after a retry (InsertBatcher); so does this: a refused position
   * may hold this run's own row, written by a try that answered a transient error (FerretDB's
   * "database is locked" can come after the rows landed), and placing those events again elsewhere
   * would store them twice. Only after a retry: a first try's refusal is another writer's row.
   */
  private async insertRun(docs: EventDoc[], w: string): Promise<number> {
    let retried = false;
    const inserted = await insertedInOrder(docs, (chunk) =>
      retryTransient((attempt) => {
        if (attempt > 1) retried = true;
        return this.col.insertMany(chunk, { ordered: true });
      }),
    );
    if (!retried || inserted === docs.length) return inserted;
    const rest = docs.slice(inserted);
    const own = await idsWithToken(
      this.col,
      rest.map((d) => d._id),
      w,
    );
    let n = 0;
    while (n < rest.length && own.has(rest[n]._id)) n++;
    return inserted + n;
  }

  /**
   * Up to `limit` events after `afterSeq`, in order, without stepping over a gap younger than
   * `gapWaitMs` (an insert still in flight).
   */
  async readAfter(workspaceId: string, afterSeq: number, limit: number): Promise<EventDoc[]> {
    return (await this.readPage(workspaceId, afterSeq, limit)).docs;
  }

  /** readAfter, and whether it stopped at a young gap with events stored past it (the log goes on
   * once the gap fills, or ages past `gapWaitMs`). */
  async readPage(
    workspaceId: string,
    afterSeq: number,
    limit: number,
  ): Promise<{ docs: EventDoc[]; stoppedAtGap: boolean }> {
    const docs = await retryTransient(() =>
      this.col
        .find({ _id: rangeOf(workspaceId, afterSeq) })
        .sort({ _id: 1 })
        .limit(limit)
        .toArray(),
    );
    const out: EventDoc[] = [];
    let expected = afterSeq + 1;
    const now = Date.now();
    for (const doc of docs) {
      if (doc.seq !== expected && now - doc.at.getTime() < this.gapWaitMs) {
        return { docs: out, stoppedAtGap: true };
      }
      out.push(doc);
      expected = doc.seq + 1;
    }
    return { docs: out, stoppedAtGap: false };
  }

  /** How long a reader may wait at a gap before readAfter steps over it. */
  get gapWait(): number {
    return this.gapWaitMs;
  }

  /** Workspaces that have events (one query: a scan on FerretDB). */
  async workspaces(): Promise<string[]> {
    return (await retryTransient(() => this.col.distinct("workspaceId", {}))) as string[];
  }

  /** Deletes events older than `olderThan`, keeping each workspace's last one: a writer that starts
   * cold reads its next seq from it, so positions are never reused. Idempotent; any node may run it. */
  async prune(olderThan: Date): Promise<number> {
    let deleted = 0;
    for (const workspaceId of await this.workspaces()) {
      const top = await this.highest(workspaceId);
      // Recorded before the deletes: a writer that starts cold probes from here, not from 1.
      await upsertById(() =>
        this.heads.updateOne({ _id: workspaceId }, { $set: { seq: top } }, { upsert: true }),
      );
      const res = await retryTransient(() =>
        this.col.deleteMany({ workspaceId, at: { $lt: olderThan }, seq: { $lt: top } }),
      );
      deleted += res.deletedCount;
    }
    return deleted;
  }
}
