// Which database errors are retried, and how: FerretDB's "database is locked" under concurrent
// writes and network blips are; a duplicate key or a validation error is not.
import { strict as assert } from "node:assert";
import { isTransientMongoError, retryTransient } from "../../../src/store/mongo.ts";

const busy = () =>
  Object.assign(
    new Error(
      "[collection.go:177 sqlite.(*collection).UpdateAll.func1] database is locked (5) (SQLITE_BUSY)",
    ),
    {
      name: "MongoServerError",
    },
  );

describe("store/mongo: retrying transient errors", () => {
  it("classifies errors", () => {
    assert.ok(isTransientMongoError(busy()));
    assert.ok(
      isTransientMongoError(Object.assign(new Error("socket closed"), { name: "MongoNetworkError" })),
    );
    assert.ok(
      isTransientMongoError({
        name: "MongoServerError",
        message: "x",
        hasErrorLabel: (l: string) => l === "RetryableWriteError",
      }),
    );
    assert.ok(
      !isTransientMongoError(
        Object.assign(new Error("E11000 duplicate key"), { name: "MongoServerError", code: 11000 }),
      ),
    );
    assert.ok(!isTransientMongoError(new Error("boom")));
    assert.ok(!isTransientMongoError(null));
  });

  it("retries a transient failure until it succeeds", async () => {
    let calls = 0;
    const result = await retryTransient(
      async () => {
        if (++calls < 3) throw busy();
        return "ok";
      },
      { baseDelayMs: 1 },
    );
    assert.equal(result, "ok");
    assert.equal(calls, 3);
  });

  it("gives up after `attempts`, and never retries a permanent error", async () => {
    let calls = 0;
    await assert.rejects(
      retryTransient(
        async () => {
          calls++;
          throw busy();
        },
        { attempts: 4, baseDelayMs: 1 },
      ),
      // The cause stays on this node (the caller's answer does not name the server).
      (err: { type?: string; cause?: unknown }) =>
        err.type === "DATABASE_UNAVAILABLE" && /database is locked/.test(String(err.cause)),
    );
    assert.equal(calls, 4);
    calls = 0;
    await assert.rejects(
      retryTransient(async () => {
        calls++;
        throw new Error("permanent");
      }),
      /permanent/,
    );
    assert.equal(calls, 1);
  });
});
