// The endpoints a webhooks node delivers: their leases (one node at a time delivers an endpoint's
// queues), renewed on a timer of their own, released after a lease period without work, and the
// back-off after a claim another node won.
import { renewDue, type HeldLease, type LeaseRepo } from "../store/webhook-leases-repo.ts";

export class HeldEndpoints {
  private readonly held = new Map<string, HeldLease>();
  /** When each held endpoint last had work. */
  private readonly lastBusy = new Map<string, number>();
  /** After a claim another node won, when to try again. */
  private readonly claimNotBefore = new Map<string, number>();

  constructor(
    private readonly leases: Pick<LeaseRepo, "claim" | "renew" | "release">,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  holds(endpointId: string): boolean {
    return this.held.has(endpointId);
  }

  ids(): string[] {
    return [...this.held.keys()];
  }

  /** Whether a claim may be tried now: not held, and no other node won one lately. */
  mayClaim(endpointId: string): boolean {
    return !this.held.has(endpointId) && (this.claimNotBefore.get(endpointId) ?? 0) <= this.now();
  }

  /** Claims the endpoint; false when another node holds it (asked again a third of a lease period
   * later, rather than on every event). Throws when the database does. */
  async claim(endpointId: string): Promise<HeldLease | null> {
    const lease = await this.leases.claim(endpointId);
    if (!lease) {
      this.claimNotBefore.set(endpointId, this.now() + this.ttlMs / 3);
      return null;
    }
    this.claimNotBefore.delete(endpointId);
    this.held.set(endpointId, lease);
    this.busy(endpointId);
    return lease;
  }

  /** The endpoint had work now. */
  busy(endpointId: string): void {
    this.lastBusy.set(endpointId, this.now());
  }

  /** Held endpoints without work for a lease period. */
  idle(): string[] {
    return this.ids().filter((id) => this.now() - (this.lastBusy.get(id) ?? 0) >= this.ttlMs);
  }

  /** Whether the lease lasts past `untilMs` (self-fencing: no attempt may outlive it). */
  covers(endpointId: string, untilMs: number): boolean {
    const lease = this.held.get(endpointId);
    return lease !== undefined && untilMs < lease.validUntil;
  }

  /** Renews what is due; the endpoints whose lease was lost are no longer held. */
  async renew(): Promise<string[]> {
    const lost = await renewDue(this.leases, this.held, this.ttlMs);
    for (const id of lost) this.forget(id);
    return lost;
  }

  /** Stops delivering the endpoint and gives its lease back. */
  async release(endpointId: string): Promise<void> {
    const lease = this.held.get(endpointId);
    this.forget(endpointId);
    if (lease) await this.leases.release(lease);
  }

  async releaseAll(): Promise<void> {
    await Promise.allSettled(this.ids().map((id) => this.release(id)));
  }

  /** No longer held (lost, or released). */
  forget(endpointId: string): void {
    this.held.delete(endpointId);
    this.lastBusy.delete(endpointId);
  }
}
