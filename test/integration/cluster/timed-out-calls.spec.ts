// A remote call that timed out is no longer tracked by the caller's broker: its context (and params)
// is not kept until the broker stops, and a graceful stop does not wait for it.
import { strict as assert } from "node:assert";
import { Errors, type Context } from "moleculer";
import { TestCluster } from "../../support/cluster.ts";

describe("a timed-out remote call", () => {
  let cluster: TestCluster;
  let release: () => void = () => undefined;
  afterEach(async () => {
    release();
    await cluster?.stop();
  });

  it("is forgotten by the caller's context tracking, and the caller stops at once", async () => {
    cluster = new TestCluster({}, "timedout");
    const held = new Promise<void>((resolve) => (release = resolve));
    cluster.node("slow", [{ name: "slow", actions: { wait: () => held } }]);
    const caller = cluster.node("caller", []);
    await cluster.start();
    await caller.waitForServices(["slow"], 10000);
    const tracked = () => (caller as unknown as { _trackedContexts: Context[] })._trackedContexts;
    await assert.rejects(
      caller.call("slow.wait", { payload: "x".repeat(1000) }, { timeout: 200 }),
      Errors.RequestTimeoutError,
    );
    assert.equal(tracked().length, 0, "no context left tracked");
    // A call that answers is tracked while it runs and forgotten when it ends, as before.
    const answering = caller.call("slow.wait");
    assert.equal(tracked().length, 1);
    release();
    await answering;
    assert.equal(tracked().length, 0);
    const stopping = Date.now();
    await caller.stop();
    assert.ok(Date.now() - stopping < 5000, `stopped in ${Date.now() - stopping} ms`);
  });
});
