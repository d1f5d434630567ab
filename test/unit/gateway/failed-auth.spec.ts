// Keys sent at once from one address: the failed-auth limit counts the lookups still under way, so no
// more wrong keys reach the key store than the address has tokens left (each is a database read), and
// right keys past that wait for a lookup to answer instead of being refused.
import { strict as assert } from "node:assert";
import { RateLimitedError } from "../../../src/errors.ts";
import { callerOfKey, checkUnderLimit } from "../../../src/gateway/auth.ts";
import { KeyStore, generateKey } from "../../../src/gateway/keys.ts";
import type { KeyRecords } from "../../../src/store/keys-repo.ts";
import { waitFor } from "../../support/wait.ts";
import { RateLimiter } from "../../../src/gateway/rate-limit.ts";

describe("gateway/auth: failed-auth limit under concurrency", () => {
  it("30 wrong keys at once with 5 tokens left: 5 lookups, the rest refused 429 before any", async () => {
    let lookups = 0;
    let answer!: () => void;
    const answered = new Promise<void>((r) => (answer = r));
    const keys = {
      known: () => undefined,
      async authenticate() {
        lookups++;
        await answered;
        return null;
      },
    } as unknown as KeyStore;
    const failedAuth = new RateLimiter(5);
    const outcomes = Array.from({ length: 30 }, (_, i) =>
      callerOfKey(keys, failedAuth, `sbk_forged${i}_x`, "10.0.0.9").then(
        (caller) => ({ caller }),
        (err: unknown) => ({ err }),
      ),
    );
    answer();
    const results = await Promise.all(outcomes);
    assert.equal(lookups, 5);
    assert.equal(results.filter((r) => "caller" in r && r.caller === null).length, 5);
    assert.equal(results.filter((r) => "err" in r && r.err instanceof RateLimitedError).length, 25);
    assert.equal(failedAuth.peek("10.0.0.9").allowed, false, "the five wrong keys spent the tokens");
    // Another address is not affected.
    assert.equal(failedAuth.peek("10.0.0.10").allowed, true);
  });

  it("30 right keys at once with 5 tokens: all pass, at most 5 looked up at a time", async () => {
    let running = 0;
    let most = 0;
    const keys = {
      known: () => undefined,
      async authenticate(presented: string) {
        most = Math.max(most, ++running);
        await new Promise((r) => setImmediate(r));
        running--;
        return { kind: "workspace", keyId: presented, workspaceId: "ws" };
      },
    } as unknown as KeyStore;
    const failedAuth = new RateLimiter(5);
    const callers = await Promise.all(
      Array.from({ length: 30 }, (_, i) => callerOfKey(keys, failedAuth, `k${i}`, "10.0.0.7")),
    );
    assert.equal(callers.filter((c) => c !== null).length, 30);
    assert.equal(most, 5);
    assert.equal(failedAuth.peek("10.0.0.7").remaining, 5, "no token spent");
  });

  it("a right key spends nothing, and a lookup that throws gives its place back", async () => {
    const failedAuth = new RateLimiter(1);
    const good = {
      known: () => undefined,
      authenticate: async () => ({ kind: "admin", keyId: "admin" }),
    } as unknown as KeyStore;
    assert.deepEqual(await callerOfKey(good, failedAuth, "k", "a"), { kind: "admin", keyId: "admin" });
    const broken = {
      known: () => undefined,
      authenticate: async () => {
        throw new Error("database away");
      },
    } as unknown as KeyStore;
    await assert.rejects(callerOfKey(broken, failedAuth, "k", "a"), /database away/);
    assert.equal(failedAuth.peek("a").allowed, true);
  });

  it("a right key whose record is cached passes while lookups from its address hang, not once it is out of tokens", async () => {
    const { key, doc } = generateKey("ws-proxy");
    let stall!: () => void;
    const stalled = new Promise<void>((r) => (stall = r));
    let hanging = 0;
    const records: KeyRecords = {
      async findById(keyId) {
        if (keyId === doc._id) return doc;
        hanging++;
        await stalled;
        return null;
      },
      insert: async () => undefined,
      listByWorkspace: async () => [],
      deleteOfWorkspace: async () => false,
    };
    const keys = new KeyStore(records, { adminKey: "" });
    const failedAuth = new RateLimiter(5);
    assert.ok(await callerOfKey(keys, failedAuth, key, "10.0.0.1"), "the key, looked up once: cached");
    // Every client behind one proxy shares its address: 5 lookups of unknown keys hang (a database that
    // stalls) and hold all of the address's tokens.
    const wrong = Array.from({ length: 5 }, (_, i) =>
      callerOfKey(keys, failedAuth, `sbk_${String(i).padStart(16, "0")}_${"0".repeat(64)}`, "10.0.0.1"),
    );
    await waitFor(() => hanging === 5, { what: "5 lookups under way" });
    const caller = await callerOfKey(keys, failedAuth, key, "10.0.0.1");
    assert.deepEqual(caller, { kind: "workspace", keyId: doc._id, workspaceId: "ws-proxy" });
    stall();
    assert.deepEqual(await Promise.all(wrong), [null, null, null, null, null]);
    // Out of tokens (nothing under way): refused like any key, so a guess past the limit is never told
    // right.
    await assert.rejects(callerOfKey(keys, failedAuth, key, "10.0.0.1"), RateLimitedError);
  });

  it("any secret checked under it (the metrics token): wrong ones spend, right ones give back", async () => {
    const failedAuth = new RateLimiter(3);
    const secret = (given: string) => () => (given === "right" ? true : null);
    assert.equal(await checkUnderLimit(failedAuth, "10.0.0.2", secret("right")), true);
    for (let i = 0; i < 3; i++)
      assert.equal(await checkUnderLimit(failedAuth, "10.0.0.2", secret("guess")), null);
    await assert.rejects(checkUnderLimit(failedAuth, "10.0.0.2", secret("right")), RateLimitedError);
    assert.equal(await checkUnderLimit(failedAuth, "10.0.0.3", secret("right")), true, "per address");
  });
});
