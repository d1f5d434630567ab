// The per-key token bucket: a burst up to the limit, then refusals with an honest Retry-After.
import { strict as assert } from "node:assert";
import { RateLimiter } from "../../../src/gateway/rate-limit.ts";

describe("gateway rate limiter", () => {
  it("allows a burst of the per-minute limit per key, then refuses with Retry-After", () => {
    let now = 0;
    const limiter = new RateLimiter(60, () => now);
    for (let i = 0; i < 60; i++) assert.equal(limiter.take("k1").allowed, true, `request ${i + 1}`);
    const refused = limiter.take("k1");
    assert.equal(refused.allowed, false);
    assert.equal(refused.retryAfterSec, 1); // 60/min refills one token per second
    assert.equal(limiter.take("k2").allowed, true, "another key has its own bucket");
    now += 1000;
    assert.equal(limiter.take("k1").allowed, true, "one token back after a second");
    assert.equal(limiter.take("k1").allowed, false);
  });

  it("Retry-After reflects a slow refill, and 0 disables the limit", () => {
    const now = 0;
    const slow = new RateLimiter(2, () => now);
    slow.take("k");
    slow.take("k");
    assert.equal(slow.take("k").retryAfterSec, 30);
    const off = new RateLimiter(0, () => now);
    for (let i = 0; i < 10000; i++) assert.equal(off.take("k").allowed, true);
  });
});

describe("gateway/rate-limit: peek", () => {
  it("tells whether a request would pass without spending a token", () => {
    let now = 0;
    const limiter = new RateLimiter(2, () => now);
    assert.equal(limiter.peek("a").allowed, true);
    limiter.take("a");
    limiter.take("a");
    assert.equal(limiter.peek("a").allowed, false);
    assert.equal(limiter.peek("a").allowed, false, "peeking spends nothing and refills nothing");
    now += 30000;
    assert.equal(limiter.peek("a").allowed, true);
    assert.equal(limiter.take("a").allowed, true);
  });
});

describe("gateway/rate-limit: hold", () => {
  it("a held request counts as spent for peek until settled; settling spends it or gives it back", () => {
    const now = 0;
    const limiter = new RateLimiter(2, () => now);
    const first = limiter.hold("a");
    const second = limiter.hold("a");
    assert.equal(limiter.peek("a").allowed, false, "two held of two");
    first(false);
    assert.equal(limiter.peek("a").allowed, true, "one given back");
    second(true);
    second(true);
    assert.equal(limiter.peek("a").remaining, 1, "spent once, however often settled");
    const off = new RateLimiter(0, () => now);
    off.hold("a");
    assert.equal(off.peek("a").allowed, true);
  });
});

describe("gateway/rate-limit: a limit per key", () => {
  it("a changed limit keeps what was spent, capped at the new limit, and refills at the new rate", () => {
    let now = 0;
    const limiter = new RateLimiter(0, () => now);
    for (let i = 0; i < 3; i++) assert.equal(limiter.take("ws", 3).allowed, true);
    assert.equal(limiter.take("ws", 3).allowed, false);
    assert.equal(limiter.take("ws", 600).allowed, false, "a raised limit starts from what is left");
    now += 100; // 600/min refills one token per 100 ms
    assert.equal(limiter.take("ws", 600).allowed, true);
    now += 60000;
    assert.equal(limiter.take("ws", 2).remaining, 1, "a lowered limit caps the refilled tokens");
    assert.equal(limiter.take("ws", 2).allowed, true);
    assert.equal(limiter.take("ws", 2).allowed, false);
    assert.equal(limiter.take("other", 2).allowed, true, "each key has its own bucket");
    for (let i = 0; i < 10; i++) assert.equal(limiter.take("ws", 0).allowed, true, "0: unlimited");
  });

  it("forgets full buckets once many keys were seen, whatever their limits", () => {
    let now = 0;
    const limiter = new RateLimiter(0, () => now);
    for (let i = 0; i < 100_000; i++) limiter.take(`k${i}`, i % 2 ? 60 : 6000);
    now += 60_000;
    limiter.take("spent", 1);
    assert.equal(limiter.take("spent", 1).allowed, false);
    assert.equal(limiter.size, 1);
  });
});
