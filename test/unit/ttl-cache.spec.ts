import { strict as assert } from "node:assert";
import { TtlCache } from "../../src/ttl-cache.ts";

/** A loader that answers `<key>#<n>` for its n-th call, and counts the calls. */
function counting() {
  const calls: string[] = [];
  const load = async (key: string) => {
    calls.push(key);
    return `${key}#${calls.length}`;
  };
  return { calls, load };
}

describe("TtlCache", () => {
  let clock: number;
  const now = () => clock;
  beforeEach(() => {
    clock = 1000;
  });

  it("reuses a value for maxAgeMs, then reads it again", async () => {
    const cache = new TtlCache<string, string>(100, 10, now);
    const { calls, load } = counting();
    assert.equal(await cache.get("a", load), "a#1");
    clock += 99;
    assert.equal(await cache.get("a", load), "a#1");
    clock += 1;
    assert.equal(await cache.get("a", load), "a#2");
    assert.deepEqual(calls, ["a", "a"]);
  });

  it("reads a forgotten key again at once, and other keys are untouched", async () => {
    const cache = new TtlCache<string, string>(100, 10, now);
    const { calls, load } = counting();
    await cache.get("a", load);
    await cache.get("b", load);
    cache.forget("a");
    assert.equal(await cache.get("a", load), "a#3");
    assert.equal(await cache.get("b", load), "b#2");
    assert.deepEqual(calls, ["a", "b", "a"]);
  });

  it("does not keep a load that was under way when its key was forgotten", async () => {
    const cache = new TtlCache<string, string>(100, 10, now);
    let release!: () => void;
    const slow = cache.get("a", () => new Promise<string>((resolve) => (release = () => resolve("old"))));
    cache.forget("a");
    release();
    assert.equal(await slow, "old", "its caller still gets the answer");
    assert.equal(await cache.get("a", async () => "new"), "new");
  });

  it("holds at most maxEntries keys", async () => {
    const cache = new TtlCache<string, string>(100, 3, now);
    const { calls, load } = counting();
    for (const key of ["a", "b", "c", "d"]) await cache.get(key, load);
    // The fourth key dropped the one loaded longest ago, and only that one.
    for (const key of ["b", "c", "d", "a"]) await cache.get(key, load);
    assert.deepEqual(calls, ["a", "b", "c", "d", "a"]);
  });

  it("a time per value (shorter for none), and with lru a hit keeps its key from being dropped", async () => {
    const cache = new TtlCache<string, string | null>((v) => (v === null ? 10 : 100), 2, now, true);
    let none = 0;
    assert.equal(await cache.get("x", async () => null), null);
    clock += 10;
    assert.equal(await cache.get("x", async () => (none++, null)), null);
    assert.equal(none, 1, "none kept 10 ms");
    await cache.get("a", async () => "a");
    await cache.get("b", async () => "b");
    await cache.get("a", async () => assert.fail("a hit"));
    await cache.get("c", async () => "c");
    assert.deepEqual(cache.keys(), ["a", "c"], "b, used longest ago, went");
  });
});
