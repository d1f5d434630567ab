// The webjs engine with real Chromium and the real whatsapp-web.js 1.34.7 (DESIGN.md, "Engines"):
// starts that cannot reach WhatsApp Web, the watchdog, crashes and stops: no process outlives a session.
// Shared setup and the /proc checks: ./harness.ts.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { processesMentioning } from "../../../../src/engines/webjs/chromium.ts";
import { packProfile } from "../../../../src/engines/webjs/auth.ts";
import { GridFsAuthStore } from "../../../../src/store/auth-store.ts";
import { StartQueue } from "../../../../src/session/start-queue.ts";
import { testSecrets } from "../../../support/env.ts";
import { waitFor } from "../../../support/wait.ts";
import { groupAlive, groupOf, isAlive, webjsHarness } from "./harness.ts";

describe("webjs engine (real Chromium, real whatsapp-web.js)", function () {
  this.timeout(60000);
  const h = webjsHarness();
  const { makeEngine, standin } = h;

  describe("without WhatsApp Web (no internet here)", () => {
    it("a start ends failed/whatsapp_unreachable within 15 s, carrying the network error, and leaves no process", async () => {
      const { engine, first, seen } = makeEngine();
      const started = Date.now();
      await engine.start(); // resolves once the launch has finished, here: failed
      const failed = await first("failed", 15000);
      assert.ok(Date.now() - started < 15000, `took ${Date.now() - started} ms`);
      assert.equal(failed.args[0], "whatsapp_unreachable");
      assert.match(String(failed.args[1]), /net::ERR_NAME_NOT_RESOLVED at https:\/\/web\.whatsapp\.com/);
      assert.equal(failed.alive, 0, "no Chromium process of the session is alive once `failed` is emitted");
      assert.deepEqual(processesMentioning(engine.userDataDir), []);
      assert.equal(existsSync(engine.userDataDir), false, "the profile directory is removed");
      assert.deepEqual(
        seen.map((s) => s.event),
        ["failed"],
      );
      await engine.stop();
      await engine.stop(); // idempotent
      assert.deepEqual(processesMentioning(engine.userDataDir), []);
    });

    it("a restored profile is unpacked before Chromium starts; a stop keeps the saved auth state", async () => {
      const { engine, sessionId, first } = makeEngine();
      // A saved profile subset, as the strategy would have stored it after `ready`.
      const seedDir = mkdtempSync(join(h.profileRoot, "seed-"));
      mkdirSync(join(seedDir, "Default", "Local Storage", "leveldb"), { recursive: true });
      writeFileSync(join(seedDir, "Default", "Local Storage", "leveldb", "MARKER"), "restored");
      const blob = (await packProfile(seedDir))!;
      rmSync(seedDir, { recursive: true, force: true });
      const store = new GridFsAuthStore(h.db, testSecrets());
      await store.save(sessionId, blob);

      const marker = join(engine.userDataDir, "Default", "Local Storage", "leveldb", "MARKER");
      let seenMarker = false;
      const watcher = setInterval(() => (seenMarker ||= existsSync(marker)), 5);
      try {
        await engine.start();
        await first("failed", 15000);
      } finally {
        clearInterval(watcher);
      }
      assert.ok(seenMarker, "the saved profile was in place while the session ran");
      await engine.stop();
      assert.ok(await store.has(sessionId), "a failed start or a stop never deletes the saved state");
    });
  });

  describe("watchdog and crashes", () => {
    it("a start that shows neither a QR nor a connection in time is failed/startup_timeout", async () => {
      const s = await standin("hang");
      const { engine, first } = makeEngine({ chromiumArgs: s.chromiumArgs }, { startupTimeoutMs: 2500 });
      await engine.start();
      const failed = await first("failed", 10000);
      assert.equal(failed.args[0], "startup_timeout");
      assert.equal(failed.alive, 0);
    });

    it("killing Chromium during the start is noticed: the session restarts on a new browser", async () => {
      const s = await standin("hang");
      const { engine, first, seen } = makeEngine({ chromiumArgs: s.chromiumArgs, maxCrashes: 3 });
      void engine.start();
      const pid1: number = await waitFor(() => engine.browserPid, { what: "the first Chromium" });
      groupOf(pid1);
      process.kill(pid1, "SIGKILL");
      const disconnected = await first("disconnected", 10000);
      assert.equal(disconnected.args[0], "browser_crashed");
      const pid2: number = await waitFor(() => (engine.browserPid !== pid1 ? engine.browserPid : undefined), {
        what: "a restarted Chromium",
      });
      assert.ok(isAlive(pid2));
      assert.equal(groupAlive(pid1), false, "every process of the crashed browser is gone");
      assert.equal(
        seen.some((e) => e.event === "failed"),
        false,
      );
      await engine.stop();
      assert.deepEqual(processesMentioning(engine.userDataDir), []);
    });

    it("a crash while the QR is shown: disconnected/browser_crashed, then a new browser shows a new QR", async () => {
      const s = await standin("qr");
      const { engine, seen, first } = makeEngine({ chromiumArgs: s.chromiumArgs });
      await engine.start();
      await first("qr");
      const pid1 = engine.browserPid!;
      groupOf(pid1);
      process.kill(pid1, "SIGKILL");
      assert.equal((await first("disconnected")).args[0], "browser_crashed");
      await waitFor(() => seen.filter((e) => e.event === "qr").length >= 2, {
        what: "a QR from the new browser",
      });
      const qrs = seen.filter((e) => e.event === "qr").map((e) => e.args[0] as any);
      assert.notEqual(engine.browserPid, pid1);
      assert.equal(qrs[1].seq, 1, "the restarted session starts the QR policy afresh");
      assert.notEqual(qrs[1].qr, qrs[0].qr);
      assert.equal(groupAlive(pid1), false);
    });

    it("a restart after a crash waits for its turn in the node's start queue, and ends it", async () => {
      const s = await standin("qr");
      let turnAsked = false;
      let giveTurn!: () => void;
      let turnEnded = false;
      const turnGiven = new Promise<void>((r) => (giveTurn = r));
      const { engine, seen, first } = makeEngine(
        { chromiumArgs: s.chromiumArgs },
        {
          startTurn: async () => {
            turnAsked = true;
            await turnGiven;
            return () => void (turnEnded = true);
          },
        },
      );
      await engine.start();
      await first("qr");
      const pid1 = engine.browserPid!;
      groupOf(pid1);
      process.kill(pid1, "SIGKILL");
      await waitFor(() => turnAsked, { what: "the restart to ask for a turn" });
      // No turn yet: no browser, whatever the backoff (100 ms here) says.
      assert.equal(engine.browserPid, undefined);
      assert.deepEqual(processesMentioning(engine.userDataDir), []);
      giveTurn();
      await waitFor(() => seen.filter((e) => e.event === "qr").length >= 2, {
        what: "a QR from the browser started in its turn",
      });
      await waitFor(() => turnEnded, { what: "the turn to end once the restart settled" });
      assert.notEqual(engine.browserPid, pid1);
    });

    it("a crash before the first QR ends the start's turn, so the restart gets one even in a queue of one", async () => {
      const s = await standin("hang");
      const queue = new StartQueue(1);
      const { engine, seen } = makeEngine(
        { chromiumArgs: s.chromiumArgs, maxCrashes: 3 },
        { startTurn: () => queue.turn("acc") },
      );
      // As the session runs it: the start holds the only turn until start() returns.
      let started = false;
      queue.push("acc", () => engine.start().then(() => void (started = true)));
      const pid1: number = await waitFor(() => engine.browserPid, { what: "the first Chromium" });
      groupOf(pid1);
      process.kill(pid1, "SIGKILL");
      await waitFor(() => started, { what: "the start to return once its browser crashed" });
      const pid2: number = await waitFor(() => (engine.browserPid !== pid1 ? engine.browserPid : undefined), {
        what: "a restarted Chromium (in the turn the start gave back)",
        timeoutMs: 10000,
      });
      assert.ok(isAlive(pid2));
      assert.equal(
        seen.some((e) => e.event === "failed"),
        false,
        "no startup_timeout",
      );
      await engine.stop();
      assert.deepEqual(processesMentioning(engine.userDataDir), []);
    });

    it("repeated crashes end in failed/browser_crashed with nothing left running", async () => {
      const s = await standin("hang");
      const { engine, first } = makeEngine({ chromiumArgs: s.chromiumArgs, maxCrashes: 2 });
      void engine.start();
      const killed: number[] = [];
      const crashes = (async () => {
        for (let i = 0; i < 3; i++) {
          const pid: number = await waitFor(
            () => (killed.includes(engine.browserPid ?? 0) ? undefined : engine.browserPid),
            { what: `Chromium #${i + 1}` },
          );
          killed.push(pid);
          groupOf(pid);
          process.kill(pid, "SIGKILL");
        }
      })();
      const failed = await first("failed", 20000);
      await crashes;
      assert.equal(failed.args[0], "browser_crashed");
      assert.match(String(failed.args[1]), /gave up after 3 restarts/);
      assert.equal(failed.alive, 0);
      for (const pid of killed) assert.equal(groupAlive(pid), false);
    });

    it("stop({force}) of a fenced-out node kills at once, even a frozen browser a graceful stop would wait for", async () => {
      const s = await standin("hang");
      const { engine } = makeEngine({ chromiumArgs: s.chromiumArgs, destroyTimeoutMs: 3000 });
      void engine.start();
      const pid = await waitFor(() => engine.browserPid, { what: "Chromium" });
      groupOf(pid);
      process.kill(pid, "SIGSTOP"); // DevTools no longer answers: a graceful close would hang
      const t0 = Date.now();
      await engine.stop({ force: true });
      const ms = Date.now() - t0;
      console.log(`      forced stop: ${ms} ms`);
      assert.ok(ms < 1500, `a forced stop took ${ms} ms (the fence margin is 1.5 s at the defaults)`);
      assert.deepEqual(processesMentioning(engine.userDataDir), []);
      assert.equal(groupAlive(pid), false);
    });

    it("stop() leaves no process and no SingletonLock even when destroy() hangs (browser frozen)", async () => {
      const s = await standin("hang");
      const { engine } = makeEngine({ chromiumArgs: s.chromiumArgs, destroyTimeoutMs: 500 });
      void engine.start();
      const pid = await waitFor(() => engine.browserPid, { what: "Chromium" });
      const lock = join(engine.userDataDir, "SingletonLock");
      await waitFor(() => lstatSync(lock, { throwIfNoEntry: false }), { what: "the profile lock" });
      groupOf(pid);
      process.kill(pid, "SIGSTOP"); // DevTools no longer answers: browser.close() hangs
      const t0 = Date.now();
      await engine.stop();
      assert.ok(Date.now() - t0 < 8000, `stop took ${Date.now() - t0} ms`);
      assert.deepEqual(processesMentioning(engine.userDataDir), []);
      assert.equal(groupAlive(pid), false);
      assert.equal(
        lstatSync(lock, { throwIfNoEntry: false }),
        undefined,
        "no SingletonLock (a dangling symlink)",
      );
      assert.equal(existsSync(engine.userDataDir), false);
    });

    it("a Node process that dies of an uncaught exception takes its Chromium with it", async () => {
      const dir = join(h.profileRoot, `orphan${randomBytes(3).toString("hex")}`);
      const chromium = new URL("../../../../src/engines/webjs/chromium.ts", import.meta.url).pathname;
      const script = `
        const { launchChromium } = await import(${JSON.stringify(chromium)});
        const b = await launchChromium({ executablePath: "/usr/bin/chromium", userDataDir: ${JSON.stringify(dir)} });
        console.log("launched", b.pid);
        setTimeout(() => { throw new Error("the worker crashes"); }, 200);`;
      const out = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
        const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
          stdio: ["ignore", "pipe", "ignore"],
        });
        let stdout = "";
        child.stdout.on("data", (b) => (stdout += b));
        child.on("exit", (code) => resolve({ code, stdout }));
      });
      assert.match(out.stdout, /launched \d+/);
      assert.notEqual(out.code, 0);
      await waitFor(() => processesMentioning(dir).length === 0, {
        what: "no orphaned Chromium",
        timeoutMs: 3000,
      });
      rmSync(dir, { recursive: true, force: true });
    });

    it("stop() in the middle of a launch, twice, and before any start leaves nothing", async () => {
      const s = await standin("hang");
      const { engine } = makeEngine({ chromiumArgs: s.chromiumArgs });
      const starting = engine.start();
      await waitFor(() => processesMentioning(engine.userDataDir).length > 0, { what: "Chromium spawning" });
      await Promise.all([engine.stop(), engine.stop()]);
      await starting;
      assert.deepEqual(processesMentioning(engine.userDataDir), []);
      assert.equal(existsSync(engine.userDataDir), false);
      const { engine: never } = makeEngine();
      await never.stop();
      assert.deepEqual(processesMentioning(never.userDataDir), []);
    });
  });
});
