// Who delivers an endpoint's queue: at most one node at a time holds its lease (`webhook_leases`).
//
// FerretDB has no atomic conditional update under concurrency, so a lease is never taken over by
// updating it. Each lease is a term: `_id = <endpointId>#<term>`. A node claims an endpoint whose newest
// term has expired (or that has none) by INSERTING term + 1: the unique _id lets one claimant win. The
// holder renews by updating its own term (nobody else writes it) and gives up when a newer term exists
// or its lease ran out locally before a renewal landed (self-fencing: it stops starting deliveries at
// `validUntil`, which it computes from its own clock before the write). A graceful stop expires the
// held terms so another node takes over at once; a crash is covered by expiry.
import { randomBytes } from "node:crypto";
import type { Collection, Db } from "mongodb";
import { inParallel } from "../in-parallel.ts";
import { isDuplicateKey, retryTransient } from "./mongo.ts";

export const LEASES_COLLECTION = "webhook_leases";
/** Who records which workspaces' events (src/webhooks/recorder-slots.ts). */
export const RECORDERS_COLLECTION = "webhook_recorders";

export interface LeaseDoc {
  _id: string;
  endpointId: string;
  term: number;
  /** `<nodeID>/<random per process>`: a restarted node with the same nodeID is another holder. */
  holder: string;
  expiresAt: Date;
}

export interface HeldLease {
  endpointId: string;
  term: number;
  /** Local deadline: no delivery is started after it unless the lease was renewed. */
  validUntil: number;
}

export class LeaseRepo {
  readonly col: Collection<LeaseDoc>;
  readonly holder: string;
  /** Renewals under way, by lease: a release waits for its lease's. */
  private readonly renewals = new WeakMap<HeldLease, Promise<boolean>>();
  constructor(
    db: Db,
    nodeId: string,
    private readonly ttlMs: number,
    /** Another collection keeps another kind of lease (RECORDERS_COLLECTION). */
    collection = LEASES_COLLECTION,
  ) {
    this.col = db.collection<LeaseDoc>(collection);
    this.holder = `${nodeId}/${randomBytes(4).toString("hex")}`;
  }

  async ensureIndexes(): Promise<void> {
    await this.col.createIndex({ endpointId: 1, term: -1 });
  }

  private async newest(endpointId: string): Promise<LeaseDoc | null> {
    const [doc] = await this.col.find({ endpointId }).sort({ term: -1 }).limit(1).toArray();
    return doc ?? null;
  }

  /** Who keeps each key's newest term unexpired now, by key (one read of the whole collection: for a
   * small set of leases, such as the recorders' slots). */
  async holders(): Promise<Map<string, string>> {
    const now = Date.now();
    const newest = new Map<string, LeaseDoc>();
    for (const doc of await this.col.find({}).toArray()) {
      const seen = newest.get(doc.endpointId);
      if (!seen || doc.term > seen.term) newest.set(doc.endpointId, doc);
    }
    const held = new Map<string, string>();
    for (const [key, doc] of newest) if (doc.expiresAt.getTime() > now) held.set(key, doc.holder);
    return held;
  }

  /** The keys whose newest term another holder keeps unexpired now. */
  async heldElsewhere(): Promise<Set<string>> {
    const held = new Set<string>();
    for (const [key, holder] of await this.holders()) if (holder !== this.holder) held.add(key);
    return held;
  }

  /** Claims the endpoint if nobody holds it; null when another holder's term is current or a
   * concurrent claimant won. */
  async claim(endpointId: string): Promise<HeldLease | null> {
    const start = Date.now();
    const newest = await this.newest(endpointId);
    if (newest && newest.holder !== this.holder && newest.expiresAt.getTime() > start) return null;
    const term = (newest?.term ?? 0) + 1;
    try {
      await this.col.insertOne({
        _id: `${endpointId}#${term}`,
        endpointId,
        term,
        holder: this.holder,
        expiresAt: new Date(start + this.ttlMs),
      });
    } catch (err) {
      if (isDuplicateKey(err)) return null;
      throw err;
    }
    // A claimant that read a long-gone newest term could insert a term that was already superseded
    // and pruned; the newer term wins.
    if (await this.col.findOne({ endpointId, term: { $gt: term } })) {
      await this.col.deleteOne({ _id: `${endpointId}#${term}`, holder: this.holder });
      return null;
    }
    // Old terms are history only; keep the collection small.
    await this.col.deleteMany({ endpointId, term: { $lt: term } }).catch(() => undefined);
    return { endpointId, term, validUntil: start + this.ttlMs };
  }

  /** Extends a held lease; false when it was lost (a newer term exists or ours is gone). */
  async renew(lease: HeldLease): Promise<boolean> {
    const renewal = this.renewOnce(lease);
    this.renewals.set(lease, renewal);
    try {
      return await renewal;
    } finally {
      if (this.renewals.get(lease) === renewal) this.renewals.delete(lease);
    }
  }

  private async renewOnce(lease: HeldLease): Promise<boolean> {
    const start = Date.now();
    const until = lease.validUntil;
    if (start >= until) return false;
    const _id = `${lease.endpointId}#${lease.term}`;
    const res = await retryTransient(() =>
      this.col.updateOne({ _id, holder: this.holder }, { $set: { expiresAt: new Date(start + this.ttlMs) } }),
    );
    if (res.matchedCount !== 1) return false;
    // (A small collection: at most one current and a few expired terms per endpoint.)
    const newer = await this.col.findOne({ endpointId: lease.endpointId, term: { $gt: lease.term } });
    if (newer) return false;
    if (Date.now() >= until) {
      // The renewal landed after the lease had run out: another node may have claimed the endpoint in
      // between (its claim read our expired term; its insert may land after our read of newer terms).
      // Lost; the term extended is expired again, so that nobody waits a lease period for it.
      await this.col
        .updateOne({ _id, holder: this.holder }, { $set: { expiresAt: new Date(0) } })
        .catch(() => undefined);
      return false;
    }
    lease.validUntil = start + this.ttlMs;
    return true;
  }

  /** Expires a held lease so another node may claim the endpoint at once. */
  async release(lease: HeldLease): Promise<void> {
    lease.validUntil = 0;
    // A renewal already on its way would land after this and hold the lease for another period.
    await this.renewals.get(lease)?.catch(() => false);
    lease.validUntil = 0; // (a renewal that landed set it again)
    await this.col.updateOne(
      { _id: `${lease.endpointId}#${lease.term}`, holder: this.holder },
      { $set: { expiresAt: new Date(0) } },
    );
  }
}

/** Renewals written at once by `renewDue`. */
const RENEWALS_AT_ONCE = 8;

/** Renews each held lease with less than two thirds of its `ttlMs` left; answers the keys of those
 * lost (a newer term, ours gone). A renewal the database did not answer leaves its lease held until it
 * runs out, and is tried again at the next renewal: counted lost at once, the node dropped the
 * deliveries it had not marked yet, took the lease back at its next scan and sent them again. */
export async function renewDue<K>(
  leases: Pick<LeaseRepo, "renew">,
  held: Map<K, HeldLease>,
  ttlMs: number,
): Promise<K[]> {
  const lost: K[] = [];
  const now = Date.now();
  const due = [...held].filter(([, lease]) => lease.validUntil - now <= (ttlMs * 2) / 3);
  // Several at once: a node holding hundreds of endpoints renews them in a fraction of the round trips.
  await inParallel(due, RENEWALS_AT_ONCE, async ([key, lease]) => {
    const renewed = await leases.renew(lease).catch(() => null);
    if (renewed === false || (renewed === null && lease.validUntil <= Date.now())) lost.push(key);
  });
  return lost;
}
