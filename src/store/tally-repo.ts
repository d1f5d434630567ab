// The `account_tallies` collection: how many accounts each workspace has, kept as a chain of versions
// (src/quotas.ts, AccountTally). Version `seq` of a workspace is the document `<workspaceId>|<seq>`;
// a writer that knows version `seq` writes `seq + 1` by a plain insert, and the unique `_id` lets only
// one writer have it: a compare-and-set that FerretDB keeps under concurrency (its updates are a read
// and a separate write, so two `$inc` at once may count one).
import type { Collection, Db } from "mongodb";
import { InsertBatcher } from "./insert-batch.ts";
import { EVENT_HEADS_COLLECTION } from "./events-repo.ts";
import { COLLECTIONS, isDuplicateKey, retryTransient } from "./mongo.ts";

export const TALLIES_COLLECTION = COLLECTIONS.accountTallies;
/** Written once every workspace that had accounts, or a pruned event log, before tallies existed has
 * its first version ("~seeded" marked the accounts alone). */
const SEEDED_ID = "~seeded:heads";

export interface TallyDoc {
  _id: string;
  workspaceId?: string;
  seq?: number;
  /** The workspace's count as of this version. */
  n?: number;
  /** The change it made: +1 a create, -1 a delete, 0 a count. */
  d?: number;
  /** What the change counted in or out (an account's id), when the writer said. */
  ref?: string;
  at: Date;
}

export function tallyId(workspaceId: string, seq: number): string {
  return `${workspaceId}|${String(seq).padStart(15, "0")}`;
}

/** The versions of the tallies of one quota, in their collection (TallyStore of src/quotas.ts). */
export class TallyVersions {
  readonly col: Collection<TallyDoc>;
  /** Creates that arrive together write their versions together (different workspaces' mostly). */
  private readonly inserts: InsertBatcher<TallyDoc>;

  constructor(
    protected readonly db: Db,
    collection: string,
  ) {
    this.col = db.collection<TallyDoc>(collection);
    this.inserts = new InsertBatcher(this.col);
  }

  /** The count at version `seq` (by `_id`), or null when the workspace has no such version. */
  async read(workspaceId: string, seq: number): Promise<number | null> {
    const doc = await retryTransient(() => this.col.findOne({ _id: tallyId(workspaceId, seq) }));
    return typeof doc?.n === "number" ? doc.n : null;
  }

  /** Writes version `seq` with count `n`, made by a change of `d` of `ref`; false when that version
   * exists (another writer took it). */
  async write(workspaceId: string, seq: number, n: number, d: number, ref?: string): Promise<boolean> {
    try {
      await this.inserts.insert({
        _id: tallyId(workspaceId, seq),
        workspaceId,
        seq,
        n,
        d,
        ...(ref === undefined ? {} : { ref }),
        at: new Date(),
      });
      return true;
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw err;
    }
  }

  /** Versions of the workspace written since `since` that counted a create (a scan on FerretDB: only
   * when a workspace reaches its quota). */
  createsSince(workspaceId: string, since: Date): Promise<number> {
    return retryTransient(() => this.col.countDocuments({ workspaceId, d: 1, at: { $gte: since } }));
  }

  /** The sum of the changes of the workspace's versions written for `ref` since `since` (a scan of the
   * workspace's recent versions: only when a workspace is at its quota). */
  async changesOfSince(workspaceId: string, ref: string, since: Date): Promise<number> {
    const docs = await retryTransient(() =>
      this.col.find({ workspaceId, ref, at: { $gte: since } }, { projection: { d: 1 } }).toArray(),
    );
    return docs.reduce((sum, doc) => sum + (doc.d ?? 0), 0);
  }

  /** Marks the seeding of first versions done (`id`), once per database; another node's mark wins. */
  protected async markSeeded(id: string): Promise<void> {
    await retryTransient(() => this.col.insertOne({ _id: id, at: new Date() })).catch((err: unknown) => {
      if (!isDuplicateKey(err)) throw err;
    });
  }
}

/** The accounts quota's tallies. */
export class TallyRepo extends TallyVersions {
  constructor(db: Db) {
    super(db, TALLIES_COLLECTION);
  }

  /**
   * Gives every workspace that has accounts but no tally its first version (its accounts counted,
   * one scan of `accounts`), and so every workspace whose event log was pruned (a version counting 0,
   * one scan of `event_heads`), once per database: from then on a workspace without a tally has no
   * account and no event, which the event log relies on for a first account's first event (see
   * EventsRepo.expectEmpty). Idempotent and safe to run from every node at start; a version another
   * writer made first wins.
   */
  async seedOnce(): Promise<void> {
    if (await retryTransient(() => this.col.findOne({ _id: SEEDED_ID }))) return;
    const counts = await retryTransient(() =>
      this.db
        .collection(COLLECTIONS.accounts)
        .aggregate<{ _id: string; n: number }>([{ $group: { _id: "$workspaceId", n: { $sum: 1 } } }])
        .toArray(),
    );
    const pruned = await retryTransient(() =>
      this.db
        .collection<{ _id: string }>(EVENT_HEADS_COLLECTION)
        .find({}, { projection: { _id: 1 } })
        .toArray(),
    );
    const first = new Map<string, number>(pruned.map((h) => [h._id, 0]));
    for (const { _id: workspaceId, n } of counts)
      if (typeof workspaceId === "string") first.set(workspaceId, n);
    for (const [workspaceId, n] of first) await this.write(workspaceId, 1, n, 0);
    await this.markSeeded(SEEDED_ID);
  }
}
