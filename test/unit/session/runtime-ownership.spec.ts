// Ownership lost at the wrong moment. A start whose claim is still being written when the node loses
// the workspace (its lease lapsed, so everything of the workspace was stopped) must not run afterwards:
// it would run unfenced beside the next owner's session; an engine still closing gracefully is killed.
// The runtime's ordering alone is under test, so the claim is a write held open (a database cannot be
// paused at that step) and ownership a switch; the engine is the simulated one.
import { strict as assert } from "node:assert";
import { newAccountDoc, type AccountDoc } from "../../../src/accounts/types.ts";
import { registerEngine } from "../../../src/engines/index.ts";
import { createSimulatedEngine } from "../../../src/engines/simulated.ts";
import type { Fence, Ownership } from "../../../src/placement/fence.ts";
import { SessionRuntime } from "../../../src/session/runtime.ts";
import type { AccountsRepo } from "../../../src/store/accounts-repo.ts";
import type { AuthStore } from "../../../src/store/auth-store.ts";

const QR = { firstTtlMs: 60000, refreshMs: 20000, max: 5 };
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

function held<T>() {
  let release!: (v: T) => void;
  const answer = new Promise<T>((r) => (release = r));
  return { answer, release };
}

describe("session/runtime: ownership lost while a claim is written", () => {
  it("the account is not started, and its start rejects WORKSPACE_UNAVAILABLE", async () => {
    const fence: Fence = { node: "n1", epoch: 3 };
    let owned = true;
    const ownership: Ownership = {
      current: () => (owned ? fence : null),
      acquire: async () => {
        throw new Error("not under test");
      },
    };
    const claim = held<void>();
    const doc: AccountDoc = {
      ...newAccountDoc(
        { workspaceId: "ws", accountId: "acc1", sessionId: "s1", name: "a", engine: "counted" },
        new Date(),
        fence,
      ),
      status: "stopped",
    };
    const repo = {
      async claimOne(_id: string, f: Fence, patch: Partial<AccountDoc>) {
        await claim.answer;
        return {
          doc: { ...doc, ...patch, node: f.node, epoch: f.epoch },
          previous: "stopped",
          neverOwned: false,
        };
      },
      writeStatus: async () => true,
    } as unknown as AccountsRepo;
    const authStore = {
      load: async () => null,
      save: async () => undefined,
      delete: async () => undefined,
      has: async () => false,
    } as unknown as AuthStore;
    const runtime = new SessionRuntime({
      nodeId: "n1",
      repo,
      authStore,
      ownership,
      publisher: { record: async (_e, p) => p, send: () => undefined },
      engine: { qr: QR },
      logger: { info() {}, warn() {}, error() {}, debug() {} } as never,
    });

    const starting = runtime.start(doc);
    await new Promise((r) => setImmediate(r));
    // The lease lapses while the claim is on its way: the node fences itself.
    owned = false;
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
    const fence: Fence = { node: "n1", epoch: 3 };
    let owned = true;
    const ownership: Ownership = {
      current: () => (owned ? fence : null),
      acquire: async () => fence,
    };
    const doc: AccountDoc = newAccountDoc(
      { workspaceId: "ws", accountId: "acc2", sessionId: "s2", name: "a", engine: "slow-close" },
      new Date(),
      fence,
    );
    const repo = {
      writeStatus: async () => true,
      claimOne: async (_id: string, f: Fence, patch: Partial<AccountDoc>) => ({
        doc: { ...doc, ...patch, node: f.node, epoch: f.epoch },
        previous: "stopped",
        neverOwned: true,
      }),
    } as unknown as AccountsRepo;
    const authStore = {
      load: async () => null,
      save: async () => undefined,
      delete: async () => undefined,
      has: async () => false,
    } as unknown as AuthStore;
    const runtime = new SessionRuntime({
      nodeId: "n1",
      repo,
      authStore,
      ownership,
      publisher: { record: async (_e, p) => p, send: () => undefined },
      engine: { qr: QR },
      logger: { info() {}, warn() {}, error() {}, debug() {} } as never,
    });
    await runtime.start(doc);
    const stopping = runtime.stop("acc2"); // graceful: the engine takes its time
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(stops, [{ force: false }]);
    assert.equal(runtime.has("acc2"), false, "the session is closed while its engine closes");

    owned = false; // the lease lapsed: the node stops what it held of the workspace
    await runtime.stopWorkspace("ws");
    assert.deepEqual(stops, [{ force: false }, { force: true }], "the closing engine is killed");
    closeGracefully();
    await stopping;
  });
});
