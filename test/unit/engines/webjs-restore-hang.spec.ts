// A start whose saved auth state never arrives (a database that takes the query and never answers):
// the load is the first step of a webjs launch, before Chromium, and a stop, a failure or the start
// watchdog must end it at once. Before, the engine's teardown waited for the launch, so neither start()
// nor stop() ever returned, and the node's start slot stayed taken. The store is a double whose load
// never resolves (or resolves when the test says so); no Chromium is launched.
import { strict as assert } from "node:assert";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EngineEvents } from "../../../src/engines/base.ts";
import { packProfile, unpackProfile } from "../../../src/engines/webjs/auth.ts";
import { processesMentioning } from "../../../src/engines/webjs/chromium.ts";
import { WebjsEngine } from "../../../src/engines/webjs/index.ts";
import { RETRYABLE } from "../../../src/lifecycle/states.ts";
import type { AuthStore } from "../../../src/store/auth-store.ts";
import { waitFor } from "../../support/wait.ts";

/** An AuthStore that holds saved state (`has`) whose load is answered only by `answer`, if ever. */
function hangingStore() {
  let answer!: (blob: Buffer | null) => void;
  const pending = new Promise<Buffer | null>((r) => (answer = r));
  const calls = { load: 0 };
  const store: AuthStore = {
    load: () => {
      calls.load++;
      return pending;
    },
    save: async () => undefined,
    delete: async () => undefined,
    has: async () => true,
  };
  return { store, calls, answer };
}

/** engine.stop() resolves within `ms` (awaited with a deadline: before, it never did). */
async function stopsWithin(engine: WebjsEngine, ms: number): Promise<void> {
  const stop = { done: false };
  void engine.stop().then(() => (stop.done = true));
  await waitFor(() => stop.done, { timeoutMs: ms, what: "stop() returned" });
}

describe("engines/webjs: a restore whose auth state load never answers", () => {
  let root: string;

  before(() => {
    root = mkdtempSync(join(tmpdir(), "switchboard-webjs-restore-hang-"));
  });

  after(() => rmSync(root, { recursive: true, force: true }));

  function engineOn(authStore: AuthStore, startupTimeoutMs = 300) {
    const engine = new WebjsEngine({
      accountId: "a-hang",
      workspaceId: "ws-hang",
      sessionId: `s-hang-${Math.random().toString(36).slice(2, 8)}`,
      authStore,
      qr: { firstTtlMs: 60000, refreshMs: 20000, max: 6 },
      chromiumPath: "/usr/bin/chromium",
      profileDir: root,
      startupTimeoutMs,
    });
    const failed: EngineEvents["failed"][] = [];
    engine.on("failed", (...args) => failed.push(args));
    const start = { settled: false };
    void engine.start().then(() => (start.settled = true));
    return { engine, failed, start };
  }

  it("the start watchdog fails it naming the auth state load; start() settles and stop() returns at once", async () => {
    const { store, calls } = hangingStore();
    // Long enough for the steps before the load (a /proc scan, the profile's removal) under load.
    const { engine, failed, start } = engineOn(store, 1500);
    await waitFor(() => calls.load > 0, { what: "the auth state asked for" });
    await waitFor(() => start.settled, { timeoutMs: 5000, what: "start() settled by the watchdog" });
    const [reason, message] = await waitFor(() => failed[0], { timeoutMs: 1000, what: "failed" });
    assert.equal(reason, "startup_timeout");
    assert.ok(RETRYABLE.has(reason), "the owner starts it again after a backoff");
    assert.match(message, /^The saved auth state did not load from the database within 1500 ms/);
    await stopsWithin(engine, 1000);
    assert.equal(engine.status, "failed");
    assert.deepEqual(processesMentioning(engine.userDataDir), [], "no Chromium was launched");
  });

  it("a stop while it loads returns at once, and the load answered later unpacks nothing", async () => {
    const { store, calls, answer } = hangingStore();
    const { engine, failed, start } = engineOn(store, 60000);
    await waitFor(() => calls.load > 0, { what: "the auth state asked for" });
    await stopsWithin(engine, 1000);
    await waitFor(() => start.settled, { timeoutMs: 1000, what: "start() settled by the stop" });
    assert.equal(engine.status, "stopped");
    assert.deepEqual(failed, [], "a stop is no failure");

    // The profile directory now belongs to whatever runs the account next. The abandoned load gets a
    // real profile; an unpack of the same blob elsewhere, started after it, shows how long one takes.
    const source = join(root, "source");
    mkdirSync(join(source, "Default", "IndexedDB"), { recursive: true });
    writeFileSync(join(source, "Default", "IndexedDB", "keys"), "a linked device");
    const blob = (await packProfile(source))!;
    answer(blob);
    const witness = join(root, "witness");
    await unpackProfile(witness, blob);
    assert.ok(existsSync(join(witness, "Default", "IndexedDB", "keys")));
    const left = existsSync(engine.userDataDir) ? readdirSync(engine.userDataDir) : [];
    assert.deepEqual(left, [], "nothing unpacked into the profile directory after the stop");
  });
});
