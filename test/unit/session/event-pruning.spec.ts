// The event log's pruning timer: a prune still running when the next one is due is not joined by a
// second (they would only queue up on the database); the next one after it ends runs as usual.
import { strict as assert } from "node:assert";
import { startPruning } from "../../../src/session/event-publisher.ts";
import { heldStep } from "./simulated-runtime.ts";

describe("session/event-publisher: pruning", () => {
  it("skips a tick while the previous prune runs, prunes again on the tick after it ended", async () => {
    const prunes: Date[] = [];
    let step = heldStep();
    const log = {
      prune: async (olderThan: Date) => {
        prunes.push(olderThan);
        await step.held;
        return 0;
      },
    };
    let tick!: () => void;
    let periodMs = 0;
    const timer = startPruning(log, 7 * 24 * 3600_000, { error() {}, warn() {} }, (fn, ms) => {
      tick = fn;
      periodMs = ms;
      return setTimeout(() => undefined, 0);
    });
    try {
      assert.equal(periodMs, 3600_000, "a tenth of the retention, at most hourly");
      tick();
      tick();
      tick();
      assert.equal(prunes.length, 1, "one prune at a time");
      step.release();
      await step.held;
      await new Promise((resolve) => setImmediate(resolve)); // its `finally` ran
      step = heldStep();
      tick();
      assert.equal(prunes.length, 2);
      step.release();
    } finally {
      clearTimeout(timer);
    }
  });

  it("a retention of 0 keeps events for ever: no timer", () => {
    assert.equal(startPruning({ prune: async () => 0 }, 0, { error() {}, warn() {} }), undefined);
  });
});
