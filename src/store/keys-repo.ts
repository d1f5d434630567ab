// The `api_keys` collection: one record per workspace key, holding only the key's hash.
import type { Collection, Db } from "mongodb";
import { COLLECTIONS } from "./mongo.ts";

export interface ApiKeyDoc {
  /** Key id (16 hex characters); public, names the key in routes and logs. */
  _id: string;
  workspaceId: string;
  /** SHA-256 (hex) of the whole key. */
  hash: string;
  createdAt: Date;
}

/** What the gateway's key store needs of the stored keys (KeysRepo; unit tests use an array). */
export interface KeyRecords {
  findById(keyId: string): Promise<ApiKeyDoc | null>;
  insert(doc: ApiKeyDoc): Promise<void>;
  listByWorkspace(workspaceId: string): Promise<ApiKeyDoc[]>;
  /** False when the workspace has no such key. */
  deleteOfWorkspace(workspaceId: string, keyId: string): Promise<boolean>;
}

/** How long a key lookup may take: within the 2 s in which a request fails while the database does
 * not answer (README, "Errors"). */
const KEY_LOOKUP_TIMEOUT_MS = 1500;

export class KeysRepo implements KeyRecords {
  private readonly col: Collection<ApiKeyDoc>;

  constructor(db: Db) {
    this.col = db.collection<ApiKeyDoc>(COLLECTIONS.apiKeys);
  }

  /** Bounded by KEY_LOOKUP_TIMEOUT_MS: a database that stalls without dropping the connection fails
   * the lookup (503) instead of holding the request, and the failed-auth tokens of its address. */
  findById(keyId: string): Promise<ApiKeyDoc | null> {
    return this.col.findOne({ _id: keyId }, { timeoutMS: KEY_LOOKUP_TIMEOUT_MS });
  }

  async insert(doc: ApiKeyDoc): Promise<void> {
    await this.col.insertOne(doc);
  }

  /** Oldest first. */
  listByWorkspace(workspaceId: string): Promise<ApiKeyDoc[]> {
    return this.col.find({ workspaceId }).sort({ createdAt: 1 }).toArray();
  }

  async deleteOfWorkspace(workspaceId: string, keyId: string): Promise<boolean> {
    const res = await this.col.deleteOne({ _id: keyId, workspaceId });
    return res.deletedCount > 0;
  }
}
