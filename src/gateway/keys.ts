// API keys. The admin key comes from ADMIN_API_KEY; workspace keys are created by the admin route,
// shown once and stored only as SHA-256 hashes in the `api_keys` collection. A key reads
// `sbk_<keyId>_<secret>`: the key id finds the record, the hashes are compared in constant time.
// Verified keys are cached briefly per gateway (a bounded LRU) so a request costs no database round
// trip; a revocation is broadcast (`apikeys.revoked`) so every gateway forgets that key at once.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { NotFoundError } from "../errors.ts";
import type { ApiKeyDoc, KeyRecords } from "../store/keys-repo.ts";
import { TtlCache } from "../ttl-cache.ts";

export type { ApiKeyDoc } from "../store/keys-repo.ts";

/** Who is calling. */
export type Caller =
  { kind: "admin"; keyId: "admin" } | { kind: "workspace"; keyId: string; workspaceId: string };

export const KEY_PATTERN = /^sbk_([0-9a-f]{16})_([0-9a-f]{64})$/;

export function hashKey(key: string): Buffer {
  return createHash("sha256").update(key).digest();
}

/** A new key and its record (the key itself is never stored). */
export function generateKey(workspaceId: string): { key: string; doc: ApiKeyDoc } {
  const keyId = randomBytes(8).toString("hex");
  const key = `sbk_${keyId}_${randomBytes(32).toString("hex")}`;
  return { key, doc: { _id: keyId, workspaceId, hash: hashKey(key).toString("hex"), createdAt: new Date() } };
}

/** The key presented by a request: `Authorization: Bearer <key>` or `X-API-Key: <key>`. */
export function presentedKey(headers: Record<string, string | string[] | undefined>): string | null {
  const auth = headers.authorization;
  if (typeof auth === "string") {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1];
  }
  const x = headers["x-api-key"];
  if (typeof x === "string" && x.trim()) return x.trim();
  return null;
}

export interface KeyStoreOptions {
  /** The admin key; empty disables admin access. */
  adminKey: string;
  /** How long a verified key record is trusted without reading it again. @default 5000 */
  cacheTtlMs?: number;
  /** How long an unknown key id is remembered as unknown. @default 2000 */
  negativeTtlMs?: number;
  /** Cached key ids at most; when full, the least recently used one is dropped. @default 10000 */
  maxCached?: number;
}

export class KeyStore {
  private readonly adminHash: Buffer | null;
  /** Key records by id (null: no such key), least recently used dropped first; a read under way when
   * its key is revoked is not kept (it may be the revoked key). */
  private readonly cache: TtlCache<string, ApiKeyDoc | null>;

  constructor(
    private readonly records: KeyRecords,
    opts: KeyStoreOptions,
  ) {
    this.adminHash = opts.adminKey ? hashKey(opts.adminKey) : null;
    const cacheTtlMs = opts.cacheTtlMs ?? 5000;
    const negativeTtlMs = opts.negativeTtlMs ?? 2000;
    this.cache = new TtlCache(
      (doc) => (doc ? cacheTtlMs : negativeTtlMs),
      opts.maxCached ?? 10000,
      Date.now,
      true,
    );
  }

  /** The caller a presented key stands for, or null when the key is unknown or revoked. */
  async authenticate(presented: string): Promise<Caller | null> {
    const hash = hashKey(presented);
    const admin = this.adminOf(hash);
    if (admin) return admin;
    const m = KEY_PATTERN.exec(presented);
    return m ? callerOf(await this.lookup(m[1]), hash) : null;
  }

  /** The caller of a right key this gateway answers without a lookup (the admin key, a workspace key
   * whose record is cached); undefined otherwise, a wrong key too: that one takes `authenticate`. */
  known(presented: string): Caller | undefined {
    const hash = hashKey(presented);
    const admin = this.adminOf(hash);
    if (admin) return admin;
    const m = KEY_PATTERN.exec(presented);
    const hit = m ? this.cache.peek(m[1]) : undefined;
    return (hit && callerOf(hit.value, hash)) ?? undefined;
  }

  /** The admin caller when `hash` is the admin key's. */
  private adminOf(hash: Buffer): Caller | undefined {
    if (this.adminHash && timingSafeEqual(hash, this.adminHash)) return { kind: "admin", keyId: "admin" };
    return undefined;
  }

  private lookup(keyId: string): Promise<ApiKeyDoc | null> {
    return this.cache.get(keyId, (id) => this.records.findById(id));
  }

  async create(workspaceId: string): Promise<{ key: string; keyId: string; workspaceId: string }> {
    const { key, doc } = generateKey(workspaceId);
    await this.records.insert(doc);
    return { key, keyId: doc._id, workspaceId };
  }

  async list(workspaceId: string): Promise<{ items: { keyId: string; createdAt: string }[] }> {
    const docs = await this.records.listByWorkspace(workspaceId);
    return { items: docs.map((d) => ({ keyId: d._id, createdAt: new Date(d.createdAt).toISOString() })) };
  }

  /** Deletes a key of a workspace; a key of another workspace is a 404 like an unknown one. */
  async revoke(workspaceId: string, keyId: string): Promise<void> {
    const deleted = await this.records.deleteOfWorkspace(workspaceId, keyId);
    this.forget(keyId);
    if (!deleted) throw new NotFoundError("Key", keyId);
  }

  /** Whether a workspace key id still exists (from the cache while its entry is fresh). */
  async isActive(keyId: string): Promise<boolean> {
    return (await this.lookup(keyId)) !== null;
  }

  /** Drops a key from this gateway's cache (on revocation anywhere in the cluster). */
  forget(keyId: string): void {
    this.cache.forget(keyId);
  }

  /** Key ids in the cache, least recently used first (tests and diagnostics). */
  cachedKeyIds(): string[] {
    return this.cache.keys();
  }
}

/** The workspace caller of a key whose hash is `hash`, if `doc` is its record. */
function callerOf(doc: ApiKeyDoc | null, hash: Buffer): Caller | null {
  if (!doc) return null;
  const stored = Buffer.from(doc.hash, "hex");
  if (stored.length !== hash.length || !timingSafeEqual(stored, hash)) return null;
  return { kind: "workspace", keyId: doc._id, workspaceId: doc.workspaceId };
}

/** Shortest admin key (and metrics token) accepted: the admin key opens every workspace, and neither
 * may be guessable. */
export const ADMIN_KEY_MIN_LENGTH = 32;

/** Throws (the gateway does not start) when a secret setting is set but too short. */
export function assertSecretStrength(name: "ADMIN_API_KEY" | "METRICS_TOKEN", value: string): void {
  if (value && value.length < ADMIN_KEY_MIN_LENGTH) {
    throw new Error(
      `${name} must be at least ${ADMIN_KEY_MIN_LENGTH} characters (it has ${value.length}); ` +
        "generate one with: openssl rand -hex 24",
    );
  }
}
