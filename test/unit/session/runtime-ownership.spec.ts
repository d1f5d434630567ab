// Ownership lost at the wrong moment. A start whose claim is still being written when the node loses
// the workspace (its lease lapsed, so everything of the workspace was stopped) must not run afterwards:
// it would run unfenced beside the next owner's session; an engine still closing gracefully is killed.
// The runtime's ordering alone is under test, so the claim is a write held open (a database cannot be
// paused at that step) and ownership a switch; the engines are the simulated one, instrumented.
import { strict as assert } from "node:assert";
import { registerEngine } from "../../../src/engines/index.ts";
import { createSimulatedEngine } from "../../../src/engines/simulated.ts";
import type { Fence, Ownership } from "../../../src/placement/fence.ts";
import { waitFor } from "../../support/wait.ts";
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

// An engine that ended by itself (the phone logged out, a failure) is stopped by its pipeline, not by
// a stop of the runtime: the account's next start must still wait for that engine to be down (two
// engines on one profile), and a fencing stop of the workspace must still reach it.
let releaseStarts = 0;
/** While set, a graceful stop waits for `releaseClose`. */
let slowRelease = false;
let releaseClose: (() => void) | undefined;
registerEngine(
  "slow-release",
  (opts) => {
    const engine = createSimulatedEngine(opts);
    const start = engine.start.bind(engine);
    const stop = engine.stop.bind(engine);
    engine.start = async () => {
      releaseStarts++;
      await start();
    };
    engine.stop = async ({ force = false } = {}) => {
      if (!force && slowRelease) await new Promise<void>((r) => (releaseClose = r));
      await stop();
    };
    return engine;
  },
  { simulate: true },
);

describe("session/runtime: an engine that ended by itself", () => {
  it("the account's next start waits until that engine is down", async () => {
    const { runtime, connected, docOf } = simulatedRuntime({ engine: "slow-release" });
    const simulate = await connected("acc3");
    slowRelease = true;
    try {
      await simulate.logout(); // logged_out: the pipeline releases the engine, whose stop takes its time
      await waitFor(() => !runtime.has("acc3") && releaseClose !== undefined, {
        what: "the engine released",
      });
      const startsBefore = releaseStarts;
      let started = false;
      const starting = runtime.start({ ...docOf("acc3"), status: "logged_out" }).then(() => (started = true));
      // Every step a start takes without waiting (its claim answers at once here) has run by then.
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      assert.equal(started, false, "the start waits for the engine still stopping");
      assert.equal(releaseStarts, startsBefore, "no second engine while the first is still stopping");
      releaseClose!();
      await starting;
      await waitFor(() => releaseStarts === startsBefore + 1, { what: "the new engine started" });
    } finally {
      slowRelease = false;
      releaseClose?.();
    }
    await runtime.stopAll();
  });
});
