// What the `io` service relays to sockets and to whom: one Socket.IO room per workspace, and a
// holding pen for sockets whose snapshot is still on its way (so a socket never sees an event that
// happened before its snapshot was read after the snapshot itself, and never misses one in between).
import { ACCOUNT_EVENTS, type QrView } from "../accounts/types.ts";
import { BoundedMap } from "../bounded-map.ts";

/** Broker events relayed to the sockets of the event's workspace (DESIGN.md, "Interfaces"). */
export const RELAYED_EVENTS = ACCOUNT_EVENTS;
export type RelayedEvent = (typeof RELAYED_EVENTS)[number];

/** The room of a workspace's sockets that get its live events. */
export function roomOf(workspaceId: string): string {
  return `ws:${workspaceId}`;
}

/** The room of a workspace's sockets out of `roomOf` until the client continues a capped replay: QR
 * codes, which are not in the log, reach them meanwhile. */
export function qrRoomOf(workspaceId: string): string {
  return `qr:${workspaceId}`;
}

/** The workspace an event belongs to: `workspaceId`, or `account.workspaceId` for `account.created`. */
export function workspaceOfEvent(payload: unknown): string | null {
  if (!payload || typeof payload !== "object") return null;
  const p = payload as { workspaceId?: unknown; account?: { workspaceId?: unknown } };
  const ws = p.workspaceId ?? p.account?.workspaceId;
  return typeof ws === "string" && ws !== "" ? ws : null;
}

export interface HeldEvent {
  event: RelayedEvent;
  payload: unknown;
}

/** What a socket missed while held; `dropped` when the oldest of it went (past `maxHeld`). */
export interface Held {
  events: HeldEvent[];
  dropped: boolean;
}

/** A snapshot item as accounts.snapshot returns it. */
export interface SnapshotItem {
  id: string;
  qr?: QrView | null;
}

/**
 * Sockets between "connected" and "snapshot delivered". Their events are held here in arrival order
 * instead of going to the room; `release` hands them back once the snapshot has been emitted.
 */
export class SnapshotHold {
  private readonly byWorkspace = new Map<string, Map<string, Held>>();

  /**
   * @param maxHeld events kept per waiting socket; past it the oldest are dropped and the hold says so
   * (the socket then reads them from the log). @default 10000
   */
  constructor(private readonly maxHeld = 10000) {}

  hold(workspaceId: string, socketId: string): void {
    let sockets = this.byWorkspace.get(workspaceId);
    if (!sockets) this.byWorkspace.set(workspaceId, (sockets = new Map()));
    sockets.set(socketId, { events: [], dropped: false });
  }

  /** Queues an event for every waiting socket of its workspace. */
  offer(workspaceId: string, event: RelayedEvent, payload: unknown): void {
    const sockets = this.byWorkspace.get(workspaceId);
    if (!sockets) return;
    for (const held of sockets.values()) {
      held.events.push({ event, payload });
      if (held.events.length > this.maxHeld) {
        held.events.shift();
        held.dropped = true;
      }
    }
  }

  /** Stops holding the socket and returns what it missed (nothing when it was not held). */
  release(workspaceId: string, socketId: string): Held {
    const sockets = this.byWorkspace.get(workspaceId);
    const held = sockets?.get(socketId) ?? { events: [], dropped: false };
    sockets?.delete(socketId);
    if (sockets && sockets.size === 0) this.byWorkspace.delete(workspaceId);
    return held;
  }

  /** Sockets currently held (for tests and metrics). */
  get size(): number {
    let n = 0;
    for (const sockets of this.byWorkspace.values()) n += sockets.size;
    return n;
  }
}

/** Drops held `account.qr` events the snapshot already shows (same account, same QR payload). */
export function withoutQrsInSnapshot(held: HeldEvent[], items: SnapshotItem[]): HeldEvent[] {
  const shown = new Map<string, string>();
  for (const item of items) if (item.qr) shown.set(item.id, item.qr.qr);
  return held.filter((h) => {
    if (h.event !== "account.qr") return true;
    const p = h.payload as { accountId?: string; qr?: string };
    return !(p.accountId && shown.get(p.accountId) === p.qr);
  });
}

/** The seq of a relayed event's `cursor` (logged events carry one), or null. */
export function seqOfEvent(payload: unknown): number | null {
  const cursor = (payload as { cursor?: unknown } | null)?.cursor;
  if (typeof cursor !== "string" || !/^[0-9]{1,15}$/.test(cursor)) return null;
  return Number(cursor);
}

/** The highest logged event each workspace had relayed here (a bounded map: a workspace forgotten
 * just has no cursor in its next snapshot). */
export class RelayedUpTo {
  private readonly seqs: BoundedMap<string, number>;

  constructor(maxWorkspaces = 100_000) {
    this.seqs = new BoundedMap(maxWorkspaces);
  }

  note(workspaceId: string, payload: unknown): void {
    const seq = seqOfEvent(payload);
    if (seq === null || seq <= (this.seqs.get(workspaceId) ?? -1)) return;
    this.seqs.set(workspaceId, seq);
  }

  /** The cursor of the newest relayed event, or null when none was relayed here. */
  of(workspaceId: string): string | null {
    const seq = this.seqs.get(workspaceId);
    return seq === undefined ? null : String(seq);
  }
}

/** What a replay from the log gave a socket: the log up to `after` (where the client resumed from),
 * and the events of `seqs` past it. */
export interface ReplayedSeqs {
  after?: number | null;
  seqs?: ReadonlySet<number>;
}

/** Drops held events the client has from the replay (at or below where it resumed, or sent by it);
 * one the replay stepped over (a position whose insert committed late) stays, as do events without a
 * cursor (QR codes are not logged). No replay ran (null, or no `seqs`): everything stays. */
export function withoutReplayed(held: HeldEvent[], replayed: ReplayedSeqs | null): HeldEvent[] {
  const seqs = replayed?.seqs;
  if (!seqs) return held;
  const after = replayed.after ?? 0;
  return held.filter((h) => {
    const seq = seqOfEvent(h.payload);
    return seq === null || (seq > after && !seqs.has(seq));
  });
}

/**
 * Sockets a replay just sent events of the log to, for `windowMs`: a live event the replay already sent
 * (logged before the replay read it, broadcast after the socket joined its room: its status write came
 * between), or one at or below where the client resumed from, is not sent to them a second time. One
 * the replay stepped over (a position whose insert committed late) still goes out.
 */
export class RecentReplays {
  private readonly byWorkspace = new Map<
    string,
    Map<string, { after: number; seqs: ReadonlySet<number>; until: number }>
  >();

  constructor(
    private readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  note(
    workspaceId: string,
    socketId: string,
    replayed: { after?: number | null; seqs?: ReadonlySet<number> },
  ): void {
    let sockets = this.byWorkspace.get(workspaceId);
    if (!sockets) this.byWorkspace.set(workspaceId, (sockets = new Map()));
    sockets.set(socketId, {
      after: replayed.after ?? 0,
      seqs: replayed.seqs ?? new Set(),
      until: this.now() + this.windowMs,
    });
  }

  forget(workspaceId: string, socketId: string): void {
    const sockets = this.byWorkspace.get(workspaceId);
    sockets?.delete(socketId);
    if (sockets?.size === 0) this.byWorkspace.delete(workspaceId);
  }

  /** The sockets of the workspace that already have the event (none for one without a cursor). */
  sent(workspaceId: string, payload: unknown): string[] {
    const sockets = this.byWorkspace.get(workspaceId);
    const seq = sockets ? seqOfEvent(payload) : null;
    if (!sockets || seq === null) return [];
    const now = this.now();
    const out: string[] = [];
    for (const [socketId, mark] of sockets) {
      if (mark.until < now) sockets.delete(socketId);
      else if (seq <= mark.after || mark.seqs.has(seq)) out.push(socketId);
    }
    if (sockets.size === 0) this.byWorkspace.delete(workspaceId);
    return out;
  }
}
