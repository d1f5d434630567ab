// The outbound pace of each account (SEND_MIN_GAP_MS): a burst of sends leaves one at a time, at least
// the gap apart plus up to half of it again at random, so it does not look like a bot. Each send takes
// the account's next slot when it asks (first come, first served) and waits for it; the node's count of
// waiting sends is its queue depth (a metric). A send that would wait longer than a request may is
// refused instead of queued (a resumed send, which no request waits for, is not).
// MediaGate bounds the media bytes a node's sends hold (fetched or loaded, not yet handed over).
import { SendQueueFullError } from "../errors.ts";
import { PlaceCounts } from "../place-counts.ts";

export interface PacerOptions {
  /** Least time between two sends of one account; 0 turns pacing off. @default 1000 */
  minGapMs: number;
  /** A number in [0, 1): the share of half a gap added at random. @default Math.random */
  random?: () => number;
  /** Longest a send may wait for its slot; a send that would wait longer is refused (SendQueueFullError)
   * and takes no slot, so a request does not time out while its message still leaves later.
   * @default Infinity */
  maxWaitMs?: number;
  /** Told the node's queue depth whenever it changes. */
  onDepth?: (depth: number) => void;
}

/** A send's place at the head of its account's queue: `leave(true)` as it is handed to the engine (the
 * next send waits the gap from then), `leave(false)` when it gives up before that (the next goes at
 * once). Leaving twice does nothing. */
export interface PaceSlot {
  leave(sent: boolean): void;
}

export interface TurnOptions {
  /** Waits however long the queue is, never refused: a send no request waits for (a resumed one).
   * @default false */
  unbounded?: boolean;
}

/** The slot of a send that waits for no one (pacing off). */
export const FREE_SLOT: PaceSlot = { leave: () => undefined };

/** One account's queue: when its next send is expected to leave (the estimate a refusal is based on),
 * when it may leave at the earliest (set as the previous one is handed to the engine), and the last
 * in line. */
interface Lane {
  plannedAt: number;
  allowedAt: number;
  tail: Promise<void>;
}

export class SendPacer {
  private readonly lanes = new Map<string, Lane>();
  private waiting = 0;

  constructor(private readonly opts: PacerOptions) {}

  /** Sends waiting for their slot on this node. */
  get depth(): number {
    return this.waiting;
  }

  /**
   * Resolves with the account's next slot: after the send ahead of it has left, and the gap after it
   * reached the engine (not after when it was planned: a send that left late, on a busy node or after
   * a slow write, does not let the next one follow closer than the gap). The caller must leave it.
   */
  async turn(accountId: string, now = Date.now(), opts: TurnOptions = {}): Promise<PaceSlot> {
    const gap = this.opts.minGapMs;
    if (gap <= 0) return FREE_SLOT;
    // Forgotten before the lookup: a lane looked up first and then forgotten would be used detached
    // from the map, and the account's next send would find none and leave at once beside this one.
    this.forgetPast(now);
    let lane = this.lanes.get(accountId);
    const at = Math.max(now, lane?.plannedAt ?? 0);
    if (!opts.unbounded) this.refuseLongWait(accountId, at, now);
    if (!lane) {
      lane = { plannedAt: 0, allowedAt: 0, tail: Promise.resolve() };
      this.lanes.set(accountId, lane);
    }
    const spacing = gap + Math.floor(gap * 0.5 * (this.opts.random ?? Math.random)());
    lane.plannedAt = at + spacing;
    const ahead = lane.tail;
    let release!: () => void;
    lane.tail = new Promise((resolve) => (release = resolve));
    const waits = at > now;
    if (waits) this.setDepth(this.waiting + 1);
    try {
      await ahead;
      const wait = lane.allowedAt - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    } finally {
      if (waits) this.setDepth(this.waiting - 1);
    }
    const mine = lane;
    let left = false;
    return {
      leave: (sent) => {
        if (left) return;
        left = true;
        if (sent) mine.allowedAt = Date.now() + spacing;
        release();
      },
    };
  }

  /** Throws SendQueueFullError when a send of the account asked now would be refused its turn: checked
   * before a send fetches its media, so a refused one does not download it first. */
  admit(accountId: string, now = Date.now()): void {
    if (this.opts.minGapMs <= 0) return;
    this.refuseLongWait(accountId, Math.max(now, this.lanes.get(accountId)?.plannedAt ?? 0), now);
  }

  private refuseLongWait(accountId: string, at: number, now: number): void {
    if (at - now > (this.opts.maxWaitMs ?? Infinity))
      throw new SendQueueFullError(accountId, Math.ceil((at - now) / 1000));
  }

  private setDepth(depth: number): void {
    this.waiting = depth;
    this.opts.onDepth?.(depth);
  }

  /** Accounts whose last send has left and whose gap has passed need no entry (keeps the map as small
   * as the active accounts). */
  private forgetPast(now: number): void {
    if (this.lanes.size < 1024) return;
    for (const [id, lane] of this.lanes)
      if (lane.plannedAt <= now && lane.allowedAt <= now) this.lanes.delete(id);
  }
}

/**
 * A node's sends holding media bytes (from the start of a fetch or load until the send is handed to
 * its engine or gives up): at most `limit` at once, and at most `perAccount` of one account, so one
 * tenant's burst cannot hold every place; the rest wait here, in arrival order, before downloading
 * anything. A burst holds at most `limit` × MEDIA_MAX_BYTES.
 */
export class MediaGate {
  private readonly places: PlaceCounts;
  private readonly waiting: { accountId: string; granted: () => void }[] = [];

  /**
   * @param limit sends holding media at once. @default 8
   * @param perAccount of them, sends of one account. @default 2
   */
  constructor(limit = 8, perAccount = 2) {
    this.places = new PlaceCounts(limit, perAccount);
  }

  /** Sends holding media now. */
  get inUse(): number {
    return this.places.taken;
  }

  /**
   * Resolves with the function that gives the place back (calling it twice does nothing), once the
   * send may hold its media; rejects with `onTimeout()` if that is not by `deadline` (epoch ms).
   */
  async enter(
    accountId: string,
    deadline = Infinity,
    onTimeout: () => Error = () => new Error("no media place"),
  ): Promise<() => void> {
    if (this.places.full(accountId) === null && !this.waiting.some((w) => w.accountId === accountId))
      this.places.take(accountId);
    else await this.wait(accountId, deadline, onTimeout);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.places.give(accountId);
      // The first in line that may hold a place now takes it.
      const i = this.waiting.findIndex((w) => this.places.full(w.accountId) === null);
      if (i >= 0) {
        const [next] = this.waiting.splice(i, 1);
        this.places.take(next!.accountId);
        next!.granted();
      }
    };
  }

  private wait(accountId: string, deadline: number, onTimeout: () => Error): Promise<void> {
    return new Promise((resolve, reject) => {
      const entry = { accountId, granted: () => (clearTimeout(timer), resolve()) };
      const timer =
        deadline === Infinity
          ? undefined
          : setTimeout(
              () => {
                const i = this.waiting.indexOf(entry);
                if (i < 0) return;
                this.waiting.splice(i, 1);
                reject(onTimeout());
              },
              Math.max(0, deadline - Date.now()),
            );
      this.waiting.push(entry);
    });
  }
}
