// A node broadcasts a workspace's logged events in the order of their positions in the log. Events
// are logged in order, but broadcast when their caller is done with them: an account's status goes
// out after its status write, another account's message at once. A client keeps the highest cursor it
// saw and resumes after it, so a lower position broadcast late would be stepped over at its next
// reconnect. Here a broadcast waits for the positions below it that this node logged and has not
// broadcast yet, for `holdMs` at most: a position never broadcast (its write refused, its session
// fenced out) or one waiting for the database does not hold the others longer.
import { seqOfCursor } from "../store/events-repo.ts";
import type { Broadcast } from "./event-publisher.ts";

interface Held {
  seq: number;
  event: string;
  payload: unknown;
  done: (value: unknown) => void;
  fail: (err: unknown) => void;
}

interface WorkspaceOrder {
  /** Positions logged here and not broadcast yet, with when each was logged. */
  unsent: Map<number, number>;
  /** Broadcasts waiting for a lower unsent position, in seq order. */
  held: Held[];
  /** Fires when the oldest unsent position stops being waited for. */
  timer?: NodeJS.Timeout;
}

export class BroadcastOrder {
  private readonly workspaces = new Map<string, WorkspaceOrder>();

  constructor(
    private readonly broadcast: Broadcast,
    /** How long a logged position is waited for. */
    private readonly holdMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The workspace's event at `seq` is logged: broadcasts above it wait for it. */
  logged(workspaceId: string, seq: number): void {
    let order = this.workspaces.get(workspaceId);
    if (!order) this.workspaces.set(workspaceId, (order = { unsent: new Map(), held: [] }));
    order.unsent.set(seq, this.now());
    order.timer ??= this.armed(workspaceId, order);
  }

  /** Broadcasts `payload` (its `cursor` naming its position) once no lower position logged here is
   * still to go; resolves with the broadcast's result. Events without a position (not logged), or
   * whose position this node did not log, go at once. */
  send(workspaceId: string | null, event: string, payload: unknown): Promise<unknown> {
    const order = workspaceId === null ? undefined : this.workspaces.get(workspaceId);
    const seq = seqOfCursor((payload as { cursor?: unknown } | null)?.cursor);
    if (!order || seq === null || !order.unsent.delete(seq)) return this.emit(event, payload);
    const sent = new Promise<unknown>((done, fail) => {
      const at = order.held.findIndex((h) => h.seq > seq);
      order.held.splice(at < 0 ? order.held.length : at, 0, { seq, event, payload, done, fail });
    });
    this.release(workspaceId!, order);
    return sent;
  }

  /** Positions tracked, held broadcasts included (for tests). */
  get size(): number {
    let n = 0;
    for (const order of this.workspaces.values()) n += order.unsent.size + order.held.length;
    return n;
  }

  /** Stops waiting for positions logged `holdMs` ago, broadcasts the held events no unsent position is
   * below, and re-arms the timer for what is left (forgets the workspace when nothing is). */
  private release(workspaceId: string, order: WorkspaceOrder): void {
    const expired = this.now() - this.holdMs;
    let lowest = Infinity;
    for (const [seq, at] of order.unsent) {
      if (at <= expired) order.unsent.delete(seq);
      else lowest = Math.min(lowest, seq);
    }
    while (order.held.length > 0 && order.held[0].seq < lowest) {
      const h = order.held.shift()!;
      this.emit(h.event, h.payload).then(h.done, h.fail);
    }
    clearTimeout(order.timer);
    order.timer = undefined;
    if (order.unsent.size === 0 && order.held.length === 0) this.workspaces.delete(workspaceId);
    else order.timer = this.armed(workspaceId, order);
  }

  /** A timer for when the oldest unsent position expires. */
  private armed(workspaceId: string, order: WorkspaceOrder): NodeJS.Timeout {
    const oldest = Math.min(...order.unsent.values());
    const timer = setTimeout(
      () => this.release(workspaceId, order),
      Math.max(0, oldest + this.holdMs - this.now()),
    );
    timer.unref();
    return timer;
  }

  private emit(event: string, payload: unknown): Promise<unknown> {
    try {
      return Promise.resolve(this.broadcast(event, payload));
    } catch (err) {
      return Promise.reject(err);
    }
  }
}
