// The `accounts` collection. Status writes are fenced: they filter on the writer's `{node, epoch}`,
// so a node that lost a workspace (and has not noticed yet) changes nothing.
import type { Collection, Db } from "mongodb";
import type { AccountDoc, DesiredState } from "../accounts/types.ts";
import type { Fence } from "../session/ownership.ts";
import { COLLECTIONS, retryTransient } from "./mongo.ts";

/** Fields a fenced status write may set. */
export type StatusPatch = Partial<
  Pick<AccountDoc, "status" | "reason" | "message" | "phoneNumber" | "pushName" | "qr" | "desiredState">
> & { updatedAt: Date };

/** Documents this fence may take: never claimed, claimed at a lower epoch, or already its own. */
function claimable(fence: Fence) {
  return {
    $or: [{ epoch: null }, { epoch: { $lt: fence.epoch } }, { node: fence.node, epoch: fence.epoch }],
  };
}

export class AccountsRepo {
  readonly col: Collection<AccountDoc>;
  constructor(db: Db) {
    this.col = db.collection<AccountDoc>(COLLECTIONS.accounts);
  }

  async insert(doc: AccountDoc): Promise<void> {
    // A write the server refused while busy did not happen: trying again is safe.
    await retryTransient(() => this.col.insertOne(doc));
  }

  /** The account `id` of `workspaceId`; another workspace's account is simply not found. */
  async get(workspaceId: string, id: string): Promise<AccountDoc | null> {
    // Looked up by `_id` alone, the workspace compared here: FerretDB (SQLite) serves an `_id`-only
    // filter from its primary key but scans for `{_id, workspaceId}` — about 10× slower. Without the
    // stored QR (a PNG data URL of several kB; the runtime holds the live one): the hot path of every
    // `accounts.*`/`session.*` call, see bench/routing.ts.
    const doc = await retryTransient(() => this.col.findOne({ _id: id }, { projection: { qr: 0 } }));
    return doc && doc.workspaceId === workspaceId ? doc : null;
  }

  async list(workspaceId: string): Promise<AccountDoc[]> {
    return retryTransient(() => this.col.find({ workspaceId }).sort({ createdAt: 1, _id: 1 }).toArray());
  }

  /** Accounts that should be running, for a reconciler. */
  async listDesiredRunning(workspaceId: string): Promise<AccountDoc[]> {
    return retryTransient(() => this.col.find({ workspaceId, desiredState: "running" }).toArray());
  }

  async delete(workspaceId: string, id: string): Promise<boolean> {
    return (await retryTransient(() => this.col.deleteOne({ _id: id, workspaceId }))).deletedCount === 1;
  }

  async setDesiredState(workspaceId: string, id: string, desiredState: DesiredState): Promise<boolean> {
    const res = await retryTransient(() =>
      this.col.updateOne({ _id: id, workspaceId }, { $set: { desiredState } }),
    );
    return res.matchedCount === 1;
  }

  /** Stamps one account with `fence` unless a newer owner holds it; returns the document, or null. */
  async claim(id: string, fence: Fence): Promise<AccountDoc | null> {
    // One round trip; no projection (FerretDB's findOneAndUpdate rejects one).
    return retryTransient(() =>
      this.col.findOneAndUpdate(
        { _id: id, ...claimable(fence) },
        { $set: { node: fence.node, epoch: fence.epoch } },
        { returnDocument: "after" },
      ),
    );
  }

  /** Stamps every account of the workspace that `fence` may take (a new owner after a claim). */
  async takeover(workspaceId: string, fence: Fence): Promise<number> {
    const res = await this.col.updateMany(
      { workspaceId, ...claimable(fence) },
      { $set: { node: fence.node, epoch: fence.epoch } },
    );
    return res.modifiedCount;
  }

  /** A fenced status write: true when this fence still holds the account. */
  async writeStatus(id: string, fence: Fence, patch: StatusPatch): Promise<boolean> {
    // Idempotent ($set), so a write refused by a busy server is simply tried again.
    const res = await retryTransient(() =>
      this.col.updateOne({ _id: id, node: fence.node, epoch: fence.epoch }, { $set: patch }),
    );
    return res.matchedCount === 1;
  }
}
