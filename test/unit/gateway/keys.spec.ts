// API keys: format, header parsing, hashed storage compared in constant time, admin key, revocation.
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import {
  KEY_PATTERN,
  KeyStore,
  assertSecretStrength,
  generateKey,
  presentedKey,
} from "../../../src/gateway/keys.ts";
import type { ApiKeyDoc, KeyRecords } from "../../../src/store/keys-repo.ts";

/** The stored keys over an array (the key store's logic is under test, not MongoDB). */
function memoryRecords(docs: ApiKeyDoc[]) {
  let reads = 0;
  const records: KeyRecords = {
    async findById(keyId) {
      reads++;
      return docs.find((d) => d._id === keyId) ?? null;
    },
    async insert(doc) {
      docs.push(doc);
    },
    async listByWorkspace(workspaceId) {
      return docs.filter((d) => d.workspaceId === workspaceId);
    },
    async deleteOfWorkspace(workspaceId, keyId) {
      const i = docs.findIndex((d) => d._id === keyId && d.workspaceId === workspaceId);
      if (i >= 0) docs.splice(i, 1);
      return i >= 0;
    },
  };
  return { col: records, reads: () => reads };
}

describe("gateway keys", () => {
  it("generates sbk_<keyId>_<secret> keys and stores only their SHA-256", () => {
    const { key, doc } = generateKey("ws1");
    assert.match(key, KEY_PATTERN);
    assert.equal(doc._id, KEY_PATTERN.exec(key)![1]);
    assert.equal(doc.hash, createHash("sha256").update(key).digest("hex"));
    assert.ok(!JSON.stringify(doc).includes(key.slice(21)));
  });

  it("reads the key from Authorization: Bearer or X-API-Key, nothing else", () => {
    assert.equal(presentedKey({ authorization: "Bearer abc" }), "abc");
    assert.equal(presentedKey({ authorization: "bearer   abc  " }), "abc");
    assert.equal(presentedKey({ "x-api-key": " abc " }), "abc");
    assert.equal(presentedKey({ authorization: "Basic abc" }), null);
    assert.equal(presentedKey({ authorization: "Bearer a b" }), null);
    assert.equal(presentedKey({}), null);
  });

  it("authenticates workspace keys and the admin key; refuses forged, altered and revoked keys", async () => {
    const { col } = memoryRecords([]);
    const store = new KeyStore(col, { adminKey: "the-admin-key", cacheTtlMs: 0, negativeTtlMs: 0 });
    const { key, keyId } = await store.create("ws1");
    assert.deepEqual(await store.authenticate(key), { kind: "workspace", keyId, workspaceId: "ws1" });
    assert.deepEqual(await store.authenticate("the-admin-key"), { kind: "admin", keyId: "admin" });
    assert.equal(await store.authenticate("the-admin-key "), null);
    assert.equal(await store.authenticate(key.slice(0, -1) + (key.endsWith("0") ? "1" : "0")), null);
    assert.equal(await store.authenticate(`sbk_${keyId}_${"0".repeat(64)}`), null);
    assert.equal(await store.authenticate("nonsense"), null);
    await assert.rejects(store.revoke("ws2", keyId), (err: any) => err.code === 404);
    await store.revoke("ws1", keyId);
    assert.equal(await store.authenticate(key), null);
  });

  it("an empty admin key disables admin access", async () => {
    const store = new KeyStore(memoryRecords([]).col, { adminKey: "" });
    assert.equal(await store.authenticate(""), null);
  });

  it("caches verified keys (no read per request) and forgets a revoked one at once", async () => {
    const mem = memoryRecords([]);
    const store = new KeyStore(mem.col, { adminKey: "", cacheTtlMs: 60000 });
    const { key, keyId } = await store.create("ws1");
    for (let i = 0; i < 100; i++) assert.ok(await store.authenticate(key));
    assert.equal(mem.reads(), 1);
    store.forget(keyId);
    await store.revoke("ws1", keyId);
    assert.equal(await store.authenticate(key), null);
  });

  it("a read under way when its key is revoked is not cached: the key is refused at once after", async () => {
    const docs: ApiKeyDoc[] = [];
    const mem = memoryRecords(docs);
    // The first read answers only once let go: it saw the key before the revocation deleted it.
    let letGo!: () => void;
    const held = new Promise<void>((resolve) => (letGo = resolve));
    let first = true;
    const records: KeyRecords = {
      ...mem.col,
      async findById(keyId) {
        const doc = await mem.col.findById(keyId);
        if (first) {
          first = false;
          await held;
        }
        return doc;
      },
    };
    const store = new KeyStore(records, { adminKey: "", cacheTtlMs: 60000 });
    const { key, keyId } = await store.create("ws1");
    const during = store.authenticate(key);
    await store.revoke("ws1", keyId);
    letGo();
    assert.ok(await during, "the request that began before the revocation passes");
    assert.equal(await store.authenticate(key), null);
  });

  it("keeps at most maxCached keys, dropping the least recently used, and forgets one key alone", async () => {
    const mem = memoryRecords([]);
    const store = new KeyStore(mem.col, { adminKey: "", cacheTtlMs: 60000, maxCached: 3 });
    const keys = [];
    for (let i = 0; i < 4; i++) keys.push(await store.create(`ws${i}`));
    const [a, b, c, d] = keys;
    for (const k of [a, b, c]) assert.ok(await store.authenticate(k.key));
    assert.ok(await store.authenticate(a.key), "a is used again: b is now the oldest");
    assert.ok(await store.authenticate(d.key));
    assert.deepEqual(store.cachedKeyIds(), [c.keyId, a.keyId, d.keyId]);
    const reads = mem.reads();
    for (const k of [c, a, d]) assert.ok(await store.authenticate(k.key));
    assert.equal(mem.reads(), reads, "the kept keys need no read");
    assert.ok(await store.authenticate(b.key), "a dropped key is read again");
    assert.equal(mem.reads(), reads + 1);
    store.forget(a.keyId);
    assert.ok(!store.cachedKeyIds().includes(a.keyId), "that key is forgotten");
    assert.equal(store.cachedKeyIds().length, 2, "and only that key");
  });

  it("isActive: a key id is active until its record is gone (once the cache entry is stale)", async () => {
    const mem = memoryRecords([]);
    const store = new KeyStore(mem.col, { adminKey: "", cacheTtlMs: 0, negativeTtlMs: 0 });
    const { keyId } = await store.create("ws1");
    assert.equal(await store.isActive(keyId), true);
    await store.revoke("ws1", keyId);
    assert.equal(await store.isActive(keyId), false);
  });
});

describe("gateway/keys: admin key and metrics token strength", () => {
  it("refuses a supplied secret shorter than 32 characters, naming the setting; none set is fine", () => {
    assert.throws(
      () => assertSecretStrength("ADMIN_API_KEY", "short-admin-key"),
      /ADMIN_API_KEY must be at least 32 characters \(it has 15\)/,
    );
    assert.throws(
      () => assertSecretStrength("METRICS_TOKEN", "prom"),
      /METRICS_TOKEN must be at least 32 characters \(it has 4\)/,
    );
    assert.doesNotThrow(() => assertSecretStrength("ADMIN_API_KEY", "k".repeat(32)));
    assert.doesNotThrow(() => assertSecretStrength("METRICS_TOKEN", ""));
  });
});
