// Which webhooks node records which workspaces' events in the outbox. Every webhooks node reads the
// event log, but one node at a time records a workspace: workspaces hash to `slots` slots, and a node
// records the workspaces of the slots whose lease it holds (`webhook_recorders`, leases as the
// endpoints' in src/store/webhook-leases-repo.ts). Two nodes recording the same events at the same
// moment collide at every row on FerretDB (an ordered insert goes one row at a time, each refused at
// the rows the other put first), which made the rows reach the outbox seconds late.
//
// Each node holds at most its share of the slots (all slots over the webhooks nodes it sees, rounded
// up): it releases what it holds beyond that, and claims free slots up to it, every `tickMs`. A slot
// whose holder stopped is released at once; one whose holder crashed is free once its lease expired.
// A node that claims a slot is told first (`onClaimed`), so that it picks up where the last holder's
// stored log position says before it records anything. A holder that could not renew in time stops
// recording at its lease's end; if it overlaps the next holder for a moment, both record, which the
// outbox's unique rows make harmless.
// An event that is not logged (a QR code) cannot be read back once its moment passed, so while its
// workspace's slot has no holder (released, not claimed yet) every node that hears it records it
// (`recordsUnlogged`), and the outbox's unique {eventId, endpointId} keeps one row.
import type { Logger } from "moleculer";
import { renewDue, type HeldLease, type LeaseRepo } from "../store/webhook-leases-repo.ts";

export const RECORDER_SLOTS = 16;

export interface RecorderSlotsOptions {
  leaseTtlMs: number;
  /** How often held leases are renewed, extra ones released and free ones claimed. */
  tickMs: number;
  /** @default RECORDER_SLOTS */
  slots?: number;
}

/** The slot of a workspace (FNV-1a of its id): the same on every node. */
export function slotOf(workspaceId: string, slots = RECORDER_SLOTS): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < workspaceId.length; i++) {
    h ^= workspaceId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % slots;
}

/** How many slots one of `nodes` webhooks nodes holds at most. */
export function shareOf(slots: number, nodes: number): number {
  return Math.ceil(slots / Math.max(1, nodes));
}

const keyOf = (slot: number) => `slot-${slot}`;

export class RecorderSlots {
  private readonly held = new Map<number, HeldLease>();
  private readonly slots: number;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  /** The read of the slots' holders under way, and the one callers that came meanwhile wait for. */
  private reading: Promise<unknown> = Promise.resolve();
  private nextRead: Promise<Map<string, string>> | null = null;
  private stopped = false;

  constructor(
    private readonly leases: LeaseRepo,
    private readonly opts: RecorderSlotsOptions,
    /** The webhooks nodes this node sees, itself included. */
    private readonly nodes: () => number,
    /** Runs before a newly claimed slot's workspaces are recorded by this node. */
    private readonly onClaimed: (slot: number) => Promise<void>,
    private readonly logger: Logger,
  ) {
    this.slots = opts.slots ?? RECORDER_SLOTS;
  }

  /** Claims this node's share before it returns, so that recording can start at once. */
  async start(): Promise<void> {
    await this.tickNow();
    this.timer = setInterval(() => void this.tickNow(), this.opts.tickMs);
    this.timer.unref();
  }

  /** Releases every held slot, so that the other nodes claim them at their next tick. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.ticking;
    const held = [...this.held.values()];
    this.held.clear();
    await Promise.allSettled(held.map((l) => this.leases.release(l)));
  }

  /** Whether this node records the workspace now. */
  holds(workspaceId: string): boolean {
    const lease = this.held.get(slotOf(workspaceId, this.slots));
    return lease !== undefined && Date.now() < lease.validUntil;
  }

  /**
   * Whether this node records an event of the workspace that is not logged: when it holds the
   * workspace's slot, and also when no other node does (the slot changes hands: a node whose share
   * shrank, or that stopped, released it, and the next claims it at its next tick). Then each node
   * that heard the event records it; the outbox keeps one row. A crashed holder's slot counts as held
   * until its lease expires: such events are lost meanwhile. A node that does not hold the slot reads
   * the slots' holders (a few documents) for each such event.
   */
  async recordsUnlogged(workspaceId: string): Promise<boolean> {
    if (this.holds(workspaceId)) return true;
    const holder = (await this.holdersNow()).get(keyOf(slotOf(workspaceId, this.slots)));
    return holder === undefined || holder === this.leases.holder;
  }

  /** The slots' holders, read after the call: callers that come while a read is under way share the
   * next one. */
  private holdersNow(): Promise<Map<string, string>> {
    this.nextRead ??= this.reading.then(() => {
      this.nextRead = null;
      const read = this.leases.holders();
      this.reading = read.catch(() => undefined);
      return read;
    });
    return this.nextRead;
  }

  heldSlots(): number[] {
    return [...this.held.keys()].sort((a, b) => a - b);
  }

  /** One tick at a time (the timer may fire while a slow one runs). */
  private tickNow(): Promise<void> {
    this.ticking ??= this.tick()
      .catch((err) => this.logger.warn(`webhooks: recorder slots: ${(err as Error).message}`))
      .finally(() => (this.ticking = null));
    return this.ticking;
  }

  private async tick(): Promise<void> {
    await this.renew();
    const share = shareOf(this.slots, this.nodes());
    for (const slot of this.heldSlots().slice(share).reverse()) {
      const lease = this.held.get(slot)!;
      this.held.delete(slot);
      await this.leases.release(lease);
    }
    if (this.held.size >= share || this.stopped) return;
    const elsewhere = await this.leases.heldElsewhere();
    for (let slot = 0; slot < this.slots && this.held.size < share && !this.stopped; slot++) {
      if (this.held.has(slot) || elsewhere.has(keyOf(slot))) continue;
      const lease = await this.leases.claim(keyOf(slot));
      if (!lease) continue;
      try {
        await this.onClaimed(slot);
      } catch (err) {
        await this.leases.release(lease).catch(() => undefined);
        throw err;
      }
      this.held.set(slot, lease);
    }
  }

  private async renew(): Promise<void> {
    for (const slot of await renewDue(this.leases, this.held, this.opts.leaseTtlMs)) {
      this.held.delete(slot);
      this.logger.warn(`webhooks: lost the recorder lease of slot ${slot}`);
    }
  }
}
