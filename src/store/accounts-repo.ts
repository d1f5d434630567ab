// The `accounts` collection. Status writes are fenced: they filter on the writer's `{node, epoch}`,
// so a node that lost a workspace (and has not noticed yet) changes nothing.
import type { Collection, Db } from "mongodb";
import { ValidationError } from "../errors.ts";
import type { AccountDoc, DesiredState } from "../accounts/types.ts";
import type { AccountStatus } from "../lifecycle/states.ts";
import type { OwnerStamp as Fence } from "./stamp.ts";
import { FencedUpdateBatcher } from "./fenced-updates.ts";
import { InsertBatcher } from "./insert-batch.ts";
import { COLLECTIONS, retryTransient } from "./mongo.ts";
import { pageCursorOf, pagePositionOf } from "./page-cursor.ts";

/** Fields a fenced status write may set. */
export type StatusPatch = Partial<
  Pick<AccountDoc, "status" | "reason" | "message" | "phoneNumber" | "pushName" | "desiredState">
> & { updatedAt: Date };

/** Documents an older owner holds, or none: never claimed, or claimed at a lower epoch. */
function olderOwner(fence: Fence) {
  return [{ epoch: null }, { epoch: { $lt: fence.epoch } }];
}

/** Documents this fence may take: those of an older owner (or none), or already its own. */
function claimable(fence: Fence) {
  return { $or: [...olderOwner(fence), { node: fence.node, epoch: fence.epoch }] };
}

export class AccountsRepo {
  readonly col: Collection<AccountDoc>;
  /** Creates that arrive together are written together (see InsertBatcher). */
  private readonly inserts: InsertBatcher<AccountDoc>;
  /** Status writes of many accounts at once go together. */
  private readonly statusWrites: FencedUpdateBatcher<AccountDoc>;
  constructor(db: Db) {
    this.col = db.collection<AccountDoc>(COLLECTIONS.accounts);
    // A write the server refused while busy did not happen: trying again is safe.
    this.inserts = new InsertBatcher(this.col);
    this.statusWrites = new FencedUpdateBatcher(this.col);
  }

  /** Rejects like `insertOne` would, with code 11000 for an `_id` that exists. */
  insert(doc: AccountDoc): Promise<void> {
    return this.inserts.insert(doc);
  }

  /** The account `id` of `workspaceId`; another workspace's account is simply not found. */
  async get(workspaceId: string, id: string): Promise<AccountDoc | null> {
    // Looked up by `_id` alone, the workspace compared here: stock FerretDB 1.24 (SQLite) narrows only
    // an `_id`-only filter by `_id` and scans for `{_id, workspaceId}` (ours is patched, see
    // tools/ferretdb/patches.mjs). The hot path of every `accounts.*`/`session.*` call.
    const doc = await retryTransient(() => this.col.findOne({ _id: id }));
    return doc && doc.workspaceId === workspaceId ? doc : null;
  }

  /** An account by id alone, whatever its workspace (the operator's console). */
  async byId(id: string): Promise<AccountDoc | null> {
    return this.col.findOne({ _id: id });
  }

  async list(workspaceId: string): Promise<AccountDoc[]> {
    return retryTransient(() => this.col.find({ workspaceId }).sort({ createdAt: 1, _id: 1 }).toArray());
  }

  /** All accounts of a workspace (no `limit`, no `cursor`), or the page of `limit` (default 100) after
   * `cursor`, with the next page's cursor (null on the last). A cursor not of ours: ValidationError. */
  async page(
    workspaceId: string,
    limit?: number,
    cursor?: string,
  ): Promise<{ docs: AccountDoc[]; nextCursor: string | null }> {
    const after = cursor === undefined ? undefined : accountCursorPosition(cursor);
    if (after === null)
      throw new ValidationError("cursor is not a nextCursor of this list", {
        field: "cursor",
        value: cursor,
      });
    if (limit === undefined && !after) return { docs: await this.list(workspaceId), nextCursor: null };
    const { docs, more } = await this.listPage(workspaceId, limit ?? 100, after);
    const last = docs.at(-1);
    return { docs, nextCursor: more && last ? accountCursorOf(last) : null };
  }

  /** Up to `limit` accounts of a workspace after `after` (in list order: created, then id), and whether
   * more follow. */
  async listPage(
    workspaceId: string,
    limit: number,
    after?: { createdAt: Date; id: string },
  ): Promise<{ docs: AccountDoc[]; more: boolean }> {
    const filter = after
      ? {
          workspaceId,
          $or: [
            { createdAt: { $gt: after.createdAt } },
            { createdAt: after.createdAt, _id: { $gt: after.id } },
          ],
        }
      : { workspaceId };
    const docs = await retryTransient(() =>
      this.col
        .find(filter)
        .sort({ createdAt: 1, _id: 1 })
        .limit(limit + 1)
        .toArray(),
    );
    return { docs: docs.slice(0, limit), more: docs.length > limit };
  }

  /** Accounts of these workspaces that should be running (a reconciler's pass). */
  /** How many accounts the workspace has (its quota check). */
  async countIn(workspaceId: string): Promise<number> {
    return retryTransient(() => this.col.countDocuments({ workspaceId }));
  }

  async desiredRunningIn(workspaceIds: string[]): Promise<AccountDoc[]> {
    return retryTransient(() =>
      this.col.find({ workspaceId: { $in: workspaceIds }, desiredState: "running" }).toArray(),
    );
  }

  /** Every workspace with an account wanted running, with the nodes its accounts last ran on and the
   * highest epoch they carry: a node's first sweep (placement records lost with their bucket). */
  async workspacesWantingToRun(): Promise<Map<string, { lastOwners: string[]; above: number }>> {
    const docs = await retryTransient(() =>
      this.col
        .find({ desiredState: "running" }, { projection: { workspaceId: 1, node: 1, epoch: 1 } })
        .toArray(),
    );
    return ownersOf(docs);
  }

  /** What the accounts of one workspace wanted running say of their owners (workspacesWantingToRun). */
  async ownersIn(workspaceId: string): Promise<{ lastOwners: string[]; above: number }> {
    const docs = await retryTransient(() =>
      this.col
        .find({ workspaceId, desiredState: "running" }, { projection: { workspaceId: 1, node: 1, epoch: 1 } })
        .toArray(),
    );
    return ownersOf(docs).get(workspaceId) ?? { lastOwners: [], above: 0 };
  }

  /** Workspaces of accounts wanted running that no worker ever took (created while none answered). */
  async unplacedWorkspaces(limit: number): Promise<string[]> {
    const docs = await retryTransient(() =>
      this.col
        .find({ node: null, desiredState: "running" }, { projection: { workspaceId: 1 }, limit })
        .toArray(),
    );
    return [...new Set(docs.map((d) => d.workspaceId))];
  }

  /**
   * Deletes the document: "deleted" by this call, "gone" already, or "unsure" when it was gone at a
   * try that followed a failed one (the failed try may have deleted it, its answer lost; or another
   * delete did).
   */
  async delete(workspaceId: string, id: string): Promise<"deleted" | "gone" | "unsure"> {
    let failed = false;
    const res = await retryTransient(() =>
      this.col.deleteOne({ _id: id, workspaceId }).catch((err: unknown) => {
        failed = true;
        throw err;
      }),
    );
    if (res.deletedCount === 1) return "deleted";
    return failed ? "unsure" : "gone";
  }

  /** False when no such account is there to change; nor, for `running`, one a delete has begun on. */
  async setDesiredState(workspaceId: string, id: string, desiredState: DesiredState): Promise<boolean> {
    const filter = {
      _id: id,
      workspaceId,
      ...(desiredState === "running" ? { deletingAt: { $exists: false } } : {}),
    };
    const res = await retryTransient(() => this.col.updateOne(filter, { $set: { desiredState } }));
    return res.matchedCount === 1;
  }

  /** A delete begins: desired `stopped`, and never wanted running again (`setDesiredState`). */
  async markDeleting(workspaceId: string, id: string, at: Date): Promise<boolean> {
    const res = await retryTransient(() =>
      this.col.updateOne({ _id: id, workspaceId }, { $set: { desiredState: "stopped", deletingAt: at } }),
    );
    return res.matchedCount === 1;
  }

  /** Stamps one account with `fence` unless a newer owner holds it; returns the document, or null. */
  async claim(id: string, fence: Fence): Promise<AccountDoc | null> {
    return (await this.claimOne(id, fence))?.doc ?? null;
  }

  /**
   * `claim`, also setting `patch` (a start records `initializing` in the same write) and telling the
   * status it replaced and whether the account had never been owned before (no epoch): no engine can
   * have run it, so it has no saved auth state (the session skips that read). A retried claim that
   * had already applied reports false — the safe answer.
   */
  async claimOne(
    id: string,
    fence: Fence,
    patch: Partial<StatusPatch> = {},
    /** The status the caller read: what a try after one whose write landed (its answer lost) reports
     * as replaced, since it reads the first try's write. */
    readStatus?: AccountDoc["status"],
  ): Promise<{ doc: AccountDoc; neverOwned: boolean; previous: AccountDoc["status"] } | null> {
    let retried = false;
    // One round trip; no projection (FerretDB's findOneAndUpdate rejects one).
    const before = await retryTransient((attempt) => {
      retried = attempt > 1;
      return this.col.findOneAndUpdate(
        // Never one a delete has begun on (a restart that raced the delete would run it as a ghost),
        // nor one stopped or logged out since the caller read it.
        { _id: id, deletingAt: { $exists: false }, desiredState: "running", ...claimable(fence) },
        { $set: { ...patch, node: fence.node, epoch: fence.epoch } },
        { returnDocument: "before" },
      );
    });
    if (!before) return null;
    const ownWrite =
      retried &&
      readStatus !== undefined &&
      before.node === fence.node &&
      before.epoch === fence.epoch &&
      patch.updatedAt !== undefined &&
      before.updatedAt?.getTime() === patch.updatedAt.getTime();
    return {
      doc: { ...before, ...patch, node: fence.node, epoch: fence.epoch } as AccountDoc,
      neverOwned: before.epoch == null,
      previous: ownWrite ? readStatus : before.status,
    };
  }

  /**
   * `claim` for several accounts of one workspace in one update: stamps those of `ids` that an older
   * owner (or none) holds, setting `patch` too, and returns how many it changed. Accounts already
   * carrying `fence` are left as they are: this node may be running them (a start that raced the
   * read), and `patch` (`initializing`) must not overwrite their status. The caller reads them back
   * (`byIds`) and runs only those that carry `fence` and are not running yet. Only accounts that still
   * want to run: one stopped (or logged out, deleted) since the caller read it is not claimed, so a
   * restore that read it before cannot start it after the stop found nothing to stop.
   */
  async claimMany(
    workspaceId: string,
    ids: string[],
    fence: Fence,
    patch: Partial<StatusPatch> = {},
  ): Promise<number> {
    if (ids.length === 0) return 0;
    const res = await retryTransient(() =>
      this.col.updateMany(
        { _id: { $in: ids }, workspaceId, desiredState: "running", $or: olderOwner(fence) },
        { $set: { ...patch, node: fence.node, epoch: fence.epoch } },
      ),
    );
    return res.modifiedCount;
  }

  /**
   * Records `logged_out` (desired `stopped`, no phone number) on an account no engine runs, claiming it
   * for `fence` in the same write, unless it shows `logged_out` already: an unlinked account must not
   * look connected, nor `failed` or `stopped` with a device a restart would restore (its saved state is
   * gone: a restart asks for a new scan). The document as it was, or null when nothing was written;
   * when a try's write landed but its answer was lost, the document as it is with `previous` (the
   * status the caller read) as its status.
   */
  async unlinkIdle(id: string, fence: Fence, at: Date, previous: AccountStatus): Promise<AccountDoc | null> {
    const patch: StatusPatch = {
      status: "logged_out",
      reason: null,
      message: null,
      phoneNumber: null,
      pushName: null,
      desiredState: "stopped",
      updatedAt: at,
    };
    return retryTransient(async (attempt) => {
      const before = await this.col.findOneAndUpdate(
        { _id: id, status: { $ne: "logged_out" }, ...claimable(fence) },
        { $set: { ...patch, node: fence.node, epoch: fence.epoch } },
        { returnDocument: "before" },
      );
      if (before || attempt === 1) return before;
      // Nothing to write on a try after one that failed: that one's write may have landed (`at`).
      const written = await this.col.findOne({
        _id: id,
        status: "logged_out",
        updatedAt: at,
        node: fence.node,
        epoch: fence.epoch,
      });
      return written && { ...written, status: previous };
    });
  }

  /** Accounts by id, in one query. */
  async byIds(ids: string[]): Promise<AccountDoc[]> {
    if (ids.length === 0) return [];
    return retryTransient(() => this.col.find({ _id: { $in: ids } }).toArray());
  }

  /** A fenced status write: true when this fence still holds the account. Writes of many accounts at
   * once go together (FencedUpdateBatcher); each is idempotent ($set), so tried again when refused. */
  writeStatus(id: string, fence: Fence, patch: StatusPatch): Promise<boolean> {
    return this.statusWrites.update({ _id: id, node: fence.node, epoch: fence.epoch }, { $set: patch });
  }
}

/** A page position in an account list, as clients see it (src/store/page-cursor.ts). */
export function accountCursorOf(doc: Pick<AccountDoc, "_id" | "createdAt">): string {
  return pageCursorOf(doc.createdAt, doc._id);
}

/** The position a cursor names, or null when it is not one of ours. */
export function accountCursorPosition(cursor: string): { createdAt: Date; id: string } | null {
  const pos = pagePositionOf(cursor);
  return pos && { createdAt: pos.at, id: pos.id };
}

/** By workspace: the nodes its accounts name, and the highest epoch they carry. */
function ownersOf(
  docs: Pick<AccountDoc, "workspaceId" | "node" | "epoch">[],
): Map<string, { lastOwners: string[]; above: number }> {
  const out = new Map<string, { lastOwners: string[]; above: number }>();
  for (const d of docs) {
    const ws = out.get(d.workspaceId) ?? { lastOwners: [], above: 0 };
    if (d.node && !ws.lastOwners.includes(d.node)) ws.lastOwners.push(d.node);
    ws.above = Math.max(ws.above, d.epoch ?? 0);
    out.set(d.workspaceId, ws);
  }
  return out;
}
