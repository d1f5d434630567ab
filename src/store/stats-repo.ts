// Read-only aggregates over the stored records, for the gateway's /metrics and /health/ready.
import type { Db } from "mongodb";
import { COLLECTIONS } from "./mongo.ts";

/** Accounts counted by the node recorded as running them, their status and their workspace. */
export interface AccountCount {
  node: string | null;
  status: string;
  workspaceId: string;
  n: number;
}

export class StatsRepo {
  constructor(private readonly db: Db) {}

  /** One row per (node, status, workspace); FerretDB's $group supports $sum, which is all this needs. */
  async accountCounts(): Promise<AccountCount[]> {
    const rows = await this.db
      .collection(COLLECTIONS.accounts)
      .aggregate<{ _id: { node?: string | null; status: string; workspaceId: string }; n: number }>([
        {
          $group: { _id: { node: "$node", status: "$status", workspaceId: "$workspaceId" }, n: { $sum: 1 } },
        },
      ])
      .toArray();
    return rows.map(({ _id, n }) => ({
      node: _id.node ?? null,
      status: _id.status,
      workspaceId: _id.workspaceId,
      n,
    }));
  }

  /** A round trip to the database server. */
  async ping(): Promise<void> {
    await this.db.command({ ping: 1 });
  }
}
