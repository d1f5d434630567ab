// The `workspace_quotas` collection: an admin's per-workspace overrides of the QUOTA_* defaults.
import type { Collection, Db } from "mongodb";
import { upsertById } from "./mongo.ts";

export const QUOTA_NAMES = ["accounts", "webhooks", "sockets", "socketCallsPerMinute"] as const;
export type QuotaName = (typeof QUOTA_NAMES)[number];
/** A limit per quota; 0 means unlimited. */
export type Quotas = Record<QuotaName, number>;

export interface QuotaDoc extends Partial<Quotas> {
  /** The workspace id. */
  _id: string;
  updatedAt: Date;
}

export class QuotasRepo {
  private readonly col: Collection<QuotaDoc>;

  constructor(db: Db) {
    this.col = db.collection<QuotaDoc>("workspace_quotas");
  }

  /** The overrides of a workspace (empty when none were set). */
  async overrides(workspaceId: string): Promise<Partial<Quotas>> {
    const doc = await this.col.findOne({ _id: workspaceId });
    if (!doc) return {};
    const out: Partial<Quotas> = {};
    for (const name of QUOTA_NAMES) if (typeof doc[name] === "number") out[name] = doc[name];
    return out;
  }

  /** Sets the given overrides (others unchanged); `null` removes one (back to the default). */
  async set(workspaceId: string, changes: Partial<Record<QuotaName, number | null>>): Promise<void> {
    const $set: Partial<QuotaDoc> = { updatedAt: new Date() };
    const $unset: Record<string, ""> = {};
    for (const name of QUOTA_NAMES) {
      const value = changes[name];
      if (value === null) $unset[name] = "";
      else if (value !== undefined) $set[name] = value;
    }
    await upsertById(() =>
      this.col.updateOne({ _id: workspaceId }, Object.keys($unset).length > 0 ? { $set, $unset } : { $set }, {
        upsert: true,
      }),
    );
  }
}
