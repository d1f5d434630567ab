// The one retry helper: tries, waits, which errors, and a deadline.
import { strict as assert } from "node:assert";
import { retry } from "../../src/retry.ts";

describe("retry", () => {
  it("tries again until the operation succeeds, waiting delayMs(attempt) in between", async () => {
    const waits: number[] = [];
    const result = await retry(
      async (attempt) => {
        if (attempt < 3) throw new Error("not yet");
        return attempt;
      },
      {
        attempts: 5,
        delayMs: (attempt) => {
          waits.push(attempt);
          return 1;
        },
      },
    );
    assert.equal(result, 3);
    assert.deepEqual(waits, [1, 2]);
  });

  it("stops at `attempts`, at an error shouldRetry refuses, and before passing the deadline", async () => {
    let calls = 0;
    const failing = async () => {
      calls++;
      throw new Error(`fail ${calls}`);
    };
    await assert.rejects(retry(failing, { attempts: 2 }), /fail 2/);
    calls = 0;
    await assert.rejects(retry(failing, { attempts: 9, shouldRetry: (_e, n) => n < 3 }), /fail 3/);
    calls = 0;
    await assert.rejects(
      retry(failing, { attempts: 9, delayMs: 60000, deadline: Date.now() + 1000 }),
      /fail 1/,
    );
  });
});
