import { strict as assert } from "node:assert";
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
});
