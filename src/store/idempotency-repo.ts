// One record per (account, idempotency key) in `idempotency`, written by the account's owner BEFORE
// the engine is asked to send, so a send happens at most once per key (README, "Sending exactly once").
//
// States: `recorded` (the owner holds the key and has not handed the message to its engine yet) →
// `sending` (written, acknowledged, and only then the engine called) → `sent` | `failed`. A record
// found in `sending` by anyone but the attempt holding it becomes `uncertain`: the engine may or may
// not have sent it, so it is never sent again under this key. `attempt` names the owner's attempt that
// holds the record; every change after the insert is conditional on it.
//
// A record also keeps what was asked (`request`): a `recorded` one whose owner was lost is sent by the
// account's next owner once the account is connected there, so a queued send survives a failover
// without the client asking again.
//
// The unique `_id` decides a race between two inserts. Records expire after IDEMPOTENCY_TTL_MS; no TTL
// index (FerretDB has none): an expired record counts as absent and is pruned periodically.
import type { Collection, Db } from "mongodb";
import type { MediaSource, MessageDraft } from "../messages/types.ts";
import { COLLECTIONS, isDuplicateKey, retryTransient } from "./mongo.ts";

export const IDEMPOTENCY_COLLECTION = COLLECTIONS.idempotency;

export type IdempotencyState = "recorded" | "sending" | "sent" | "failed" | "uncertain";

export interface IdempotencyDoc {
  _id: string;
  workspaceId: string;
  accountId: string;
  key: string;
  /** What the first request asked to send (a key reused for another message is refused). */
  digest: string;
  /** The message itself, for the next owner to send (records written before this field have none). */
  request?: { draft: MessageDraft; media?: MediaSource };
  state: IdempotencyState;
  attempt: string;
  node: string;
  epoch: number;
  messageId: string | null;
  /** Why it failed (`failed`), or why it is uncertain. */
  error?: { type: string; message: string; code: number };
  createdAt: Date;
  /** When the record reached its state. */
  at: Date;
  expiresAt: Date;
}

export type NewIdempotencyRecord = Pick<
  IdempotencyDoc,
  "workspaceId" | "accountId" | "key" | "digest" | "attempt" | "node" | "epoch" | "request"
>;

export function idempotencyId(accountId: string, key: string): string {
  return `${accountId}|${key}`;
}

/** The mark a deleted account leaves for IDEMPOTENCY_TTL_MS, so that a create repeating the
 * Idempotency-Key that made it (its id is the key's) does not make it again. It names no `accountId`:
 * `deleteAccount` leaves it; `prune` removes it once expired. */
interface DeletedMark {
  _id: string;
  deletedAt: Date;
  expiresAt: Date;
}

const deletedMarkId = (accountId: string) => `deleted|${accountId}`;

export class IdempotencyRepo {
  readonly col: Collection<IdempotencyDoc>;
  private readonly marks: Collection<DeletedMark>;

  constructor(
    db: Db,
    private readonly ttlMs: number,
  ) {
    this.col = db.collection<IdempotencyDoc>(IDEMPOTENCY_COLLECTION);
    this.marks = db.collection<DeletedMark>(IDEMPOTENCY_COLLECTION);
  }

  /** Marks account `accountId` deleted (before its document goes). */
  async markDeleted(accountId: string, now = new Date()): Promise<void> {
    const expiresAt = new Date(now.getTime() + this.ttlMs);
    await this.marks.updateOne(
      { _id: deletedMarkId(accountId) },
      { $set: { deletedAt: now, expiresAt } },
      { upsert: true },
    );
  }

  /** When account `accountId` was deleted, within IDEMPOTENCY_TTL_MS; null otherwise. */
  async deletedAt(accountId: string, now = new Date()): Promise<Date | null> {
    const mark = await retryTransient(() => this.marks.findOne({ _id: deletedMarkId(accountId) }));
    return mark && mark.expiresAt > now ? mark.deletedAt : null;
  }

  /** The live record of a key (an expired one counts as absent). */
  async get(accountId: string, key: string, now = new Date()): Promise<IdempotencyDoc | null> {
    const doc = await this.col.findOne({ _id: idempotencyId(accountId, key) });
    return doc && doc.expiresAt > now ? doc : null;
  }

  /** Records the key as `recorded` by `rec.attempt`; when a live record exists, returns it instead. */
  async begin(
    rec: NewIdempotencyRecord,
    now = new Date(),
  ): Promise<{ created: boolean; doc: IdempotencyDoc }> {
    const doc: IdempotencyDoc = {
      _id: idempotencyId(rec.accountId, rec.key),
      ...rec,
      state: "recorded",
      messageId: null,
      createdAt: now,
      at: now,
      expiresAt: new Date(now.getTime() + this.ttlMs),
    };
    for (let tries = 0; ; tries++) {
      try {
        await this.col.insertOne(doc);
        return { created: true, doc };
      } catch (err) {
        if (!isDuplicateKey(err) || tries >= 2) throw err;
      }
      const existing = await this.col.findOne({ _id: doc._id });
      if (existing && existing.expiresAt > now) return { created: false, doc: existing };
      // Expired (or deleted meanwhile): remove exactly that record, then try again.
      if (existing) await this.col.deleteOne({ _id: doc._id, createdAt: existing.createdAt });
    }
  }

  /** Moves the record of `attempt` from `from` to `to` (with `set`; `at` is now unless `set` says);
   * false when it is not in `from` under that attempt any more. */
  async move(
    id: string,
    attempt: string,
    from: IdempotencyState[],
    to: IdempotencyState,
    set: Partial<IdempotencyDoc> = {},
  ): Promise<boolean> {
    const res = await this.col.updateOne(
      { _id: id, attempt, state: { $in: from } },
      { $set: { at: new Date(), ...set, state: to } },
    );
    return res.matchedCount === 1;
  }

  /** Hands a `recorded` record left by `from` to a new attempt (and owner); false when it moved on. */
  async takeOver(
    id: string,
    from: string,
    to: Pick<IdempotencyDoc, "attempt" | "node" | "epoch">,
  ): Promise<boolean> {
    const res = await this.col.updateOne(
      { _id: id, attempt: from, state: "recorded" },
      { $set: { ...to, at: new Date() } },
    );
    return res.matchedCount === 1;
  }

  /** Forgets the record of `attempt`: nothing was sent, a retry may send. */
  async release(id: string, attempt: string): Promise<void> {
    await this.col.deleteOne({ _id: id, attempt, state: { $in: ["recorded", "sending"] } });
  }

  /** The live `recorded` records of an account that keep their request, oldest first. */
  async queuedOf(accountId: string, now = new Date()): Promise<IdempotencyDoc[]> {
    const docs = await this.col
      .find({ accountId, state: "recorded", request: { $exists: true }, expiresAt: { $gt: now } })
      .toArray();
    return docs.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
  }

  /** The stored media ids live `recorded` records still name (their sends wait for their account). */
  async queuedMediaIds(now = new Date()): Promise<Set<string>> {
    const docs = await retryTransient(() =>
      this.col
        .find(
          { state: "recorded", "request.media.kind": "stored", expiresAt: { $gt: now } },
          { projection: { "request.media": 1 } },
        )
        .toArray(),
    );
    const ids = new Set<string>();
    for (const doc of docs) if (doc.request?.media?.kind === "stored") ids.add(doc.request.media.mediaId);
    return ids;
  }

  async byId(id: string): Promise<IdempotencyDoc | null> {
    return this.col.findOne({ _id: id });
  }

  /** Deletes every record of an account (the account was deleted). */
  async deleteAccount(accountId: string): Promise<number> {
    return (await this.col.deleteMany({ accountId })).deletedCount;
  }

  /** Deletes expired records. */
  async prune(now = new Date()): Promise<number> {
    return (await this.col.deleteMany({ expiresAt: { $lt: now } })).deletedCount;
  }
}
