// A node's answer to stop signals: a graceful stop, after the start when one is under way; a second
// signal exits at once.
import { strict as assert } from "node:assert";
import { nodeStopper, type NodeStopOptions } from "../../src/node-stop.ts";
import { waitFor } from "../support/wait.ts";

function harness(over: Partial<NodeStopOptions> = {}) {
  const seen: string[] = [];
  const exits: number[] = [];
  const stop = nodeStopper({
    nodeId: "w1",
    stopBroker: async () => void seen.push("broker stopped"),
    starting: () => undefined,
    log: (m) => seen.push(m),
    exit: (code) => void exits.push(code),
    ...over,
  });
  return { stop, seen, exits };
}

describe("node stop signals", () => {
  it("stops the broker, then exits 0", async () => {
    const h = harness();
    h.stop("SIGTERM");
    await waitFor(() => h.exits.length > 0, { what: "the exit" });
    assert.deepEqual(h.exits, [0]);
    assert.equal(h.seen[0], "SIGTERM: stopping w1");
    assert.equal(h.seen[1], "broker stopped");
    assert.match(h.seen[2], /^stopped in \d+ ms$/);
  });

  it("during the start: the broker stops only once the start has finished", async () => {
    let finishStart!: () => void;
    const start = new Promise<void>((r) => (finishStart = r));
    const h = harness({ starting: () => start });
    h.stop("SIGINT");
    assert.equal(h.seen[0], "SIGINT: stopping w1 once its start has finished");
    await new Promise((r) => setImmediate(r));
    assert.ok(!h.seen.includes("broker stopped"), "not while starting");
    finishStart();
    await waitFor(() => h.exits.length > 0, { what: "the exit" });
    assert.deepEqual(h.exits, [0]);
    assert.ok(h.seen.includes("broker stopped"));
  });

  it("a failed start does not keep the stop waiting", async () => {
    const h = harness({ starting: () => Promise.reject(new Error("no NATS")) });
    h.stop("SIGTERM");
    await waitFor(() => h.exits.length > 0, { what: "the exit" });
    assert.deepEqual(h.exits, [0]);
  });

  it("a second signal while stopping exits 1 at once; a failed stop exits 1 naming its cause", async () => {
    const h = harness({ stopBroker: () => new Promise(() => undefined) });
    h.stop("SIGTERM");
    h.stop("SIGTERM");
    assert.deepEqual(h.exits, [1]);
    assert.match(h.seen[1], /^SIGTERM again: exiting now/);

    const failing = harness({ stopBroker: () => Promise.reject(new Error("transporter gone")) });
    failing.stop("SIGINT");
    await waitFor(() => failing.exits.length > 0, { what: "the exit" });
    assert.deepEqual(failing.exits, [1]);
    assert.match(failing.seen[1], /^stop failed: Error: transporter gone/);
  });
});
