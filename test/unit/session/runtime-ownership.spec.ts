// Ownership lost at the wrong moment. A start whose claim is still being written when the node loses
// the workspace (its lease lapsed, so everything of the workspace was stopped) must not run afterwards:
// it would run unfenced beside the next owner's session; an engine still closing gracefully is killed.
// The runtime's ordering alone is under test, so the claim is a write held open (a database cannot be
// paused at that step) and ownership a switch; the engines are the simulated one, instrumented.
import { strict as assert } from "node:assert";
import { registerEngine } from "../../../src/engines/index.ts";
import { createSimulatedEngine } from "../../../src/engines/simulated.ts";
import type { Fence, Ownership } from "../../../src/placement/fence.ts";
import { heldStep, simulatedRuntime } from "./simulated-runtime.ts";

let engineStarts = 0;
registerEngine(
  "counted",
  (opts) => {
    const engine = createSimulatedEngine(opts);
    const start = engine.start.bind(engine);
    engine.start = async () => {
      engineStarts++;
      await start();
    };
    return engine;
  },
  { simulate: true },
);

/** Ownership of workspace "ws" by this node until `lose()`. */
function switchedOwnership() {
  const fence: Fence = { node: "n1", epoch: 1 };
  let owned = true;
  const ownership: Ownership = { current: () => (owned ? fence : null), acquire: async () => fence };
  return { ownership, lose: () => void (owned = false) };
}

describe("session/runtime: ownership lost while a claim is written", () => {
  it("the account is not started, and its start rejects WORKSPACE_UNAVAILABLE", async () => {
    const { ownership, lose } = switchedOwnership();
    const claim = heldStep();
    const { runtime, docOf } = simulatedRuntime({
      ownership,
      engine: "counted",
      beforeClaim: () => claim.held,
    });
    const starting = runtime.start({ ...docOf("acc1"), status: "stopped" });
    await new Promise((r) => setImmediate(r));
    // The lease lapses while the claim is on its way: the node fences itself.
    lose();
    await runtime.stopAll();
    claim.release();
    await assert.rejects(starting, (err: { type: string }) => err.type === "WORKSPACE_UNAVAILABLE");
    // Rejected before a session existed: nothing was queued to start.
    assert.equal(runtime.has("acc1"), false);
    assert.equal(engineStarts, 0);
  });
});

// A graceful stop may take seconds (a browser's clean close); if the node loses the workspace
// meanwhile, the fencing stop must reach that engine and kill it, though its session is already closed.
const stops: { force: boolean }[] = [];
let closeGracefully!: () => void;
registerEngine(
  "slow-close",
  (opts) => {
    const engine = createSimulatedEngine(opts);
    const stop = engine.stop.bind(engine);
    const gracefulClose = new Promise<void>((r) => (closeGracefully = r));
    engine.stop = async ({ force = false } = {}) => {
      stops.push({ force });
      if (!force) await gracefulClose; // a browser taking its time to close
      await stop();
    };
    return engine;
  },
  { simulate: true },
);

describe("session/runtime: ownership lost while a graceful stop is under way", () => {
  it("the fencing stop of the workspace kills the engine still closing", async () => {
    const { ownership, lose } = switchedOwnership();
    const { runtime, docOf } = simulatedRuntime({ ownership, engine: "slow-close" });
    await runtime.start(docOf("acc2"));
    const stopping = runtime.stop("acc2"); // graceful: the engine takes its time
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(stops, [{ force: false }]);
    assert.equal(runtime.has("acc2"), false, "the session is closed while its engine closes");

    lose(); // the lease lapsed: the node stops what it held of the workspace
    await runtime.stopWorkspace("ws");
    assert.deepEqual(stops, [{ force: false }, { force: true }], "the closing engine is killed");
    closeGracefully();
    await stopping;
  });
});
