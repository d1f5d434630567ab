// The webjs engine's teardown when something in it goes wrong (real Chromium, real whatsapp-web.js):
// processes of a session that outlive the kill, a forced stop during a graceful one, and an auth state
// that is not a profile. Every way a session ends is still announced, and nothing is left to crash the
// worker.
// Shared setup and the /proc checks: ./harness.ts.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ProfileAuthStrategy } from "../../../../src/engines/webjs/auth.ts";
import { processesMentioning } from "../../../../src/engines/webjs/chromium.ts";
import { GridFsAuthStore, type AuthStore } from "../../../../src/store/auth-store.ts";
import { testSecrets } from "../../../support/env.ts";
import { waitFor } from "../../../support/wait.ts";
import { groupOf, webjsHarness } from "./harness.ts";

/** cgroup v1's freezer: a frozen process stays, in the kernel, until it is thawed, even when SIGKILLed. */
const FREEZER = "/sys/fs/cgroup/freezer";

/** Whether this machine lets the spec freeze a process (root, cgroup v1 freezer mounted). */
function canFreeze(): boolean {
  const probe = join(FREEZER, `switchboard-probe-${randomBytes(3).toString("hex")}`);
  try {
    mkdirSync(probe);
    rmdirSync(probe);
    return true;
  } catch {
    return false;
  }
}

/**
 * A process of the profile `dir` that no kill ends for now, as one stuck in the kernel (its command
 * line names the profile, as every process of a session does): frozen, it outlives SIGKILL until
 * close() thaws it.
 */
async function stuckProcess(dir: string): Promise<{ close(): Promise<void> }> {
  const group = join(FREEZER, `switchboard-${randomBytes(4).toString("hex")}`);
  mkdirSync(group);
  const child = spawn("bash", ["-c", 'exec -a "stuck $D/x" sleep 1000'], {
    env: { ...process.env, D: dir },
    stdio: "ignore",
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const pid = child.pid!;
  await waitFor(() => processesMentioning(dir).includes(pid), { what: "the process to name the profile" });
  writeFileSync(join(group, "cgroup.procs"), String(pid));
  writeFileSync(join(group, "freezer.state"), "FROZEN");
  await waitFor(() => readFileSync(join(group, "freezer.state"), "utf8").trim() === "FROZEN", {
    what: "the process frozen",
  });
  return {
    async close() {
      process.kill(pid, "SIGKILL");
      writeFileSync(join(group, "freezer.state"), "THAWED");
      await exited;
      rmdirSync(group);
    },
  };
}

/** A logger that keeps what the engine logged as errors. */
function recordingLogger() {
  const errors: string[] = [];
  const logger = {
    info: () => undefined,
    warn: () => undefined,
    debug: () => undefined,
    error: (...args: unknown[]) => void errors.push(args.map(String).join(" ")),
  };
  return { logger, errors };
}

describe("webjs engine (real Chromium, real whatsapp-web.js)", function () {
  this.timeout(60000);
  const h = webjsHarness();
  const { makeEngine, standin } = h;

  describe("a process of the session outlives SIGKILL (stuck in the kernel)", () => {
    const killFailed = /killing its processes failed: .*still alive after 300 ms/s;

    before(function () {
      // Frozen by cgroup v1's freezer, as root; cgroup v2's freezer lets SIGKILL through.
      if (!canFreeze()) this.skip();
    });

    it("a start still ends failed and returns; a stop still returns and removes the profile", async () => {
      const { logger, errors } = recordingLogger();
      const { engine, first } = makeEngine({ killTimeoutMs: 300 }, { logger });
      const stuck = await stuckProcess(engine.userDataDir);
      try {
        // The launch cannot clear the profile of the processes left on it, nor can the teardown after it.
        const started = engine.start();
        const failed = await first("failed", 5000);
        assert.equal(failed.args[0], "engine_error");
        assert.match(String(failed.args[1]), /still alive after 300 ms/);
        await started;
        assert.equal(engine.status, "failed");
        assert.ok(
          errors.some((e) => killFailed.test(e)),
          `the kill's failure is logged: ${errors.join("; ")}`,
        );

        mkdirSync(engine.userDataDir, { recursive: true });
        writeFileSync(join(engine.userDataDir, "Preferences"), "{}");
        await engine.stop();
        assert.equal(existsSync(engine.userDataDir), false, "the profile is removed all the same");
      } finally {
        await stuck.close();
      }
    });

    it("a crash still schedules the restart, which runs once the processes are gone", async () => {
      const s = await standin("hang");
      const { logger, errors } = recordingLogger();
      const { engine, first } = makeEngine(
        { chromiumArgs: s.chromiumArgs, killTimeoutMs: 300, restartBackoffMs: 3000 },
        { logger },
      );
      void engine.start();
      const pid1: number = await waitFor(() => engine.browserPid, { what: "the first Chromium" });
      groupOf(pid1);
      const stuck = await stuckProcess(engine.userDataDir);
      try {
        process.kill(pid1, "SIGKILL");
        assert.equal((await first("disconnected", 10000)).args[0], "browser_crashed");
        await waitFor(() => errors.some((e) => /still alive after 300 ms/.test(e)), {
          what: "the kill after the crash to give up",
        });
      } finally {
        await stuck.close(); // before the restart (3 s × 0.75 at the earliest) clears the profile
      }
      await waitFor(() => (engine.browserPid !== pid1 ? engine.browserPid : undefined), {
        what: "a restarted Chromium",
      });
      assert.ok(
        errors.some((e) => killFailed.test(e)),
        `the kill's failure is logged: ${errors.join("; ")}`,
      );
    });

    /** A linked session (the phone played through the stand-in) with processes no kill ends. */
    async function linkedWithStuckProcess(tuning: { startupTimeoutMs?: number } = {}) {
      const s = await standin("qr");
      const rec = recordingLogger();
      const a = makeEngine(
        { chromiumArgs: s.chromiumArgs, killTimeoutMs: 300 },
        { logger: rec.logger, startupTimeoutMs: tuning.startupTimeoutMs },
      );
      await a.engine.start();
      await a.first("qr");
      s.command({ type: "scan", phoneNumber: "15550005555", pushName: "Kim" });
      await a.first("ready");
      const stuck = await stuckProcess(a.engine.userDataDir);
      return { ...a, ...rec, s, stuck };
    }

    it("the phone's logout is still announced as logged_out", async () => {
      const a = await linkedWithStuckProcess();
      try {
        a.s.command({ type: "logout" });
        await a.first("logged_out", 10000);
        assert.equal(a.engine.status, "stopped");
        assert.ok(a.errors.some((e) => killFailed.test(e)));
      } finally {
        await a.stuck.close();
      }
    });

    it("a failed re-injection after a navigation ends failed, with no unhandled rejection", async () => {
      // whatsapp-web.js re-injects from a 'framenavigated' listener nobody awaits.
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => void unhandled.push(reason);
      process.on("unhandledRejection", onUnhandled);
      try {
        // The injection waits for WhatsApp Web's modules for as long as a start may take.
        const a = await linkedWithStuckProcess({ startupTimeoutMs: 3000 });
        try {
          const page = (
            a.engine as unknown as { client: { pupPage: { evaluate(js: string): Promise<unknown> } } }
          ).client.pupPage;
          await page.evaluate("location.href = 'about:blank'");
          const failed = await a.first("failed", 15000);
          assert.equal(failed.args[0], "startup_timeout");
          assert.ok(a.errors.some((e) => killFailed.test(e)));
        } finally {
          await a.stuck.close();
        }
        await new Promise((r) => setImmediate(r)); // an unhandled rejection is reported after the microtasks
        assert.deepEqual(unhandled, [], "no rejection left unhandled");
      } finally {
        process.off("unhandledRejection", onUnhandled);
      }
    });
  });

  it("a forced stop during a graceful one saves nothing (the fence it would save under may be gone)", async () => {
    const s = await standin("qr");
    const store = new GridFsAuthStore(h.db, testSecrets());
    let saves = 0;
    const counting: AuthStore = {
      load: (id) => store.load(id),
      save: (id, blob) => {
        saves++;
        return store.save(id, blob);
      },
      delete: (id) => store.delete(id),
      has: (id) => store.has(id),
    };
    const a = makeEngine({ chromiumArgs: s.chromiumArgs }, { authStore: counting });
    await a.engine.start();
    await a.first("qr");
    s.command({ type: "scan", phoneNumber: "15550006666", pushName: "Ida" });
    await a.first("ready");
    assert.equal(saves, 1, "saved once before `ready`");
    const graceful = a.engine.stop(); // would save the profile once Chromium has closed
    await a.engine.stop({ force: true }); // the lease is going: kill now
    await graceful;
    assert.equal(saves, 1, "no save after the forced stop");
    assert.deepEqual(processesMentioning(a.engine.userDataDir), []);
    assert.equal(existsSync(a.engine.userDataDir), false);
  });

  it("a restore of several MB that are not a profile starts as a new device, the process unharmed", async () => {
    const store = new GridFsAuthStore(h.db, testSecrets());
    const sessionId = `junk${randomBytes(3).toString("hex")}`;
    await store.save(sessionId, randomBytes(4 * 1024 * 1024)); // more than a pipe holds
    const warnings: unknown[][] = [];
    const strategy = new ProfileAuthStrategy({
      sessionId,
      userDataDir: join(h.profileRoot, sessionId),
      authStore: store,
      saveIntervalMs: 60000,
      logger: {
        info: () => undefined,
        warn: (...args: unknown[]) => void warnings.push(args),
        error: () => undefined,
        debug: () => undefined,
      },
    });
    assert.equal(await strategy.restore(), false);
    assert.match(String(warnings[0]?.[0]), /is not a webjs profile/);
  });
});
