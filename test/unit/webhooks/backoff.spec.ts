import { strict as assert } from "node:assert";
import { loadConfig } from "../../../src/config.ts";
import { backoffDelay } from "../../../src/webhooks/backoff.ts";

describe("webhooks/backoff", () => {
  const opts = { baseMs: 1000, maxMs: 60000 };

  it("doubles per attempt within [half, full] of the exponential delay", () => {
    for (const [attempt, full] of [
      [1, 1000],
      [2, 2000],
      [3, 4000],
      [6, 32000],
    ]) {
      assert.equal(
        backoffDelay(attempt, opts, () => 0),
        full / 2,
      );
      assert.equal(
        backoffDelay(attempt, opts, () => 1),
        full,
      );
    }
  });

  it("is capped at maxMs", () => {
    assert.equal(
      backoffDelay(30, opts, () => 1),
      60000,
    );
    assert.equal(
      backoffDelay(30, opts, () => 0),
      30000,
    );
  });

  it("jitters: many failures do not retry at the same instant", () => {
    const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(4, opts)));
    assert.ok(delays.size > 10);
    for (const d of delays) assert.ok(d >= 4000 && d <= 8000);
  });

  it("at the defaults, an event is retried for at least half an hour before it is dead", () => {
    const names = ["WEBHOOK_MAX_ATTEMPTS", "WEBHOOK_BACKOFF_BASE_MS", "WEBHOOK_BACKOFF_MAX_MS"];
    const saved = names.map((n) => process.env[n]);
    for (const n of names) delete process.env[n];
    let cfg: ReturnType<typeof loadConfig>;
    try {
      cfg = loadConfig();
    } finally {
      names.forEach((n, i) => {
        if (saved[i] !== undefined) process.env[n] = saved[i];
      });
    }
    const backoff = { baseMs: cfg.webhookBackoffBaseMs, maxMs: cfg.webhookBackoffMaxMs };
    const span = (random: () => number) => {
      let ms = 0;
      for (let attempt = 1; attempt < cfg.webhookMaxAttempts; attempt++)
        ms += backoffDelay(attempt, backoff, random);
      return ms / 60000;
    };
    // A receiver's deploy or short outage must not turn every account's pending event dead.
    assert.ok(span(() => 0) >= 29, `the shortest span is ${span(() => 0).toFixed(1)} min`);
    assert.ok(span(() => 1) <= 60, `the longest span is ${span(() => 1).toFixed(1)} min`);
  });
});
