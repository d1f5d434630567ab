// API keys: format, header parsing, hashed storage compared in constant time, admin key, revocation.
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import type { Collection } from "mongodb";
import {
  KEY_PATTERN,
  KeyStore,
  assertAdminKeyStrength,
  generateKey,
  presentedKey,
  type ApiKeyDoc,
} from "../../../src/gateway/keys.ts";

/** The two collection calls KeyStore makes on the hot path, over an array (pure logic under test). */
function memoryCollection(docs: ApiKeyDoc[]) {
  let reads = 0;
  const col = {
    async findOne(filter: { _id: string }) {
      reads++;
      return docs.find((d) => d._id === filter._id) ?? null;
    },
    async insertOne(doc: ApiKeyDoc) {
      docs.push(doc);
    },
    async deleteOne(filter: { _id: string; workspaceId: string }) {
      const i = docs.findIndex((d) => d._id === filter._id && d.workspaceId === filter.workspaceId);
      if (i >= 0) docs.splice(i, 1);
      return { deletedCount: i >= 0 ? 1 : 0 };
    },
  };
  return { col: col as unknown as Collection<ApiKeyDoc>, reads: () => reads };
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
    const { col } = memoryCollection([]);
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
    const store = new KeyStore(memoryCollection([]).col, { adminKey: "" });
    assert.equal(await store.authenticate(""), null);
  });

  it("caches verified keys (no read per request) and forgets a revoked one at once", async () => {
    const mem = memoryCollection([]);
    const store = new KeyStore(mem.col, { adminKey: "", cacheTtlMs: 60000 });
    const { key, keyId } = await store.create("ws1");
    for (let i = 0; i < 100; i++) assert.ok(await store.authenticate(key));
    assert.equal(mem.reads(), 1);
    store.forget(keyId);
    await store.revoke("ws1", keyId);
    assert.equal(await store.authenticate(key), null);
  });
});

describe("gateway/keys: admin key strength", () => {
  it("refuses a supplied admin key shorter than 32 characters, naming the setting; none set is fine", () => {
    assert.throws(
      () => assertAdminKeyStrength("short-admin-key"),
      /ADMIN_API_KEY must be at least 32 characters \(it has 15\)/,
    );
    assert.doesNotThrow(() => assertAdminKeyStrength("k".repeat(32)));
    assert.doesNotThrow(() => assertAdminKeyStrength(""));
  });
});
