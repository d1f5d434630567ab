import { strict as assert } from "node:assert";
import { FailureRetry, retryDelay } from "../../../src/session/failure-retry.ts";
import { waitFor } from "../../support/wait.ts";

describe("session/failure-retry", () => {
  const quiet = { info: () => undefined, warn: () => undefined };

  it("delays double per failure in a row, capped, with jitter between half and all of it", () => {
    assert.equal(
      retryDelay(1, 100, 1000, () => 1),
      100,
    );
    assert.equal(
      retryDelay(2, 100, 1000, () => 1),
      200,
    );
    assert.equal(
      retryDelay(3, 100, 1000, () => 0),
      200,
    );
    assert.equal(
      retryDelay(10, 100, 1000, () => 1),
      1000,
    );
  });

  it("retries a retryable failure, never one that needs a person; a connection resets the count", async () => {
    const retried: string[] = [];
    const r = new FailureRetry({
      baseMs: 5,
      maxMs: 20,
      logger: quiet,
      retry: async (id) => void retried.push(id),
    });
    r.failed("a", "ws", "whatsapp_unreachable");
    r.failed("b", "ws", "qr_timeout");
    r.failed("c", "ws", "auth_failure");
    r.failed("d", "ws", null);
    assert.equal(r.pending, 1);
    await waitFor(() => retried.length === 1, { what: "the retry of a" });
    assert.deepEqual(retried, ["a"]);
    r.connected("a");
    r.failed("a", "ws", "browser_crashed");
    await waitFor(() => retried.length === 2, { what: "the retry after a connection" });
  });

  it("a retry that fails itself (the database away) is scheduled again, with the backoff", async () => {
    let calls = 0;
    const r = new FailureRetry({
      baseMs: 5,
      maxMs: 20,
      logger: quiet,
      retry: async () => {
        if (++calls < 3) throw new Error("The database is unavailable; try again shortly");
      },
    });
    r.failed("a", "ws", "browser_crashed");
    await waitFor(() => calls === 3, { what: "a third retry, after two that failed" });
    await waitFor(() => r.pending === 0, { what: "no retry left once one went through" });
    assert.equal(calls, 3);
  });

  it("a workspace lost, or every workspace at shutdown, cancels the retries scheduled in it", async () => {
    const retried: string[] = [];
    const r = new FailureRetry({
      baseMs: 60000,
      maxMs: 60000,
      logger: quiet,
      retry: async (id) => void retried.push(id),
    });
    r.failed("a", "ws1", "startup_timeout");
    r.failed("b", "ws2", "browser_launch_failed");
    r.cancelWorkspace("ws1");
    assert.equal(r.pending, 1);
    r.cancelWorkspace();
    assert.equal(r.pending, 0);
  });

  it("a retry under way when its retries are cancelled schedules no next one when it fails", async () => {
    let fail!: (err: Error) => void;
    let started = 0;
    const r = new FailureRetry({
      baseMs: 5,
      maxMs: 5,
      logger: quiet,
      retry: () => {
        started++;
        return new Promise<void>((_, reject) => (fail = reject));
      },
    });
    r.failed("a", "ws1", "browser_crashed");
    await waitFor(() => started === 1, { what: "the retry to be under way" });
    r.cancelWorkspace(); // the node shuts down
    fail(new Error("The database is unavailable; try again shortly"));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(r.pending, 0, "nothing re-armed after the shutdown");
  });
});
