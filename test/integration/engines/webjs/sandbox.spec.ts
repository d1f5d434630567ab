// The webjs engine with real Chromium and the real whatsapp-web.js 1.34.7 (DESIGN.md, "Engines"):
// devTools over a pipe only, and Chromium's sandbox (issue 16).
// Shared setup and the /proc checks: ./harness.ts.
import { strict as assert } from "node:assert";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { processesMentioning } from "../../../../src/engines/webjs/chromium.ts";
import { sandboxDecision } from "../../../../src/engines/webjs/flags.ts";
import { ROOT } from "../../../../src/dev/servers.ts";
import { waitFor } from "../../../support/wait.ts";
import { webjsHarness } from "./harness.ts";

describe("webjs engine (real Chromium, real whatsapp-web.js)", function () {
  this.timeout(60000);
  const h = webjsHarness();
  const { makeEngine, standin } = h;

  describe("DevTools and sandbox (issue 16)", () => {
    /** Inodes of the TCP sockets listening on this machine (state 0A in /proc/net/tcp and tcp6). */
    function listeningInodes(): Set<string> {
      const inodes = new Set<string>();
      for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
        for (const line of readFileSync(table, "utf8").trim().split("\n").slice(1)) {
          const cols = line.trim().split(/\s+/);
          if (cols[3] === "0A") inodes.add(cols[9]);
        }
      }
      return inodes;
    }

    /** Listening TCP sockets held open by any of `pids` (through /proc/<pid>/fd). */
    function listeningSocketsOf(pids: number[]): string[] {
      const listening = listeningInodes();
      const found: string[] = [];
      for (const pid of pids) {
        let fds: string[];
        try {
          fds = readdirSync(`/proc/${pid}/fd`);
        } catch {
          continue; // exited meanwhile
        }
        for (const fd of fds) {
          let target: string;
          try {
            target = readlinkSync(`/proc/${pid}/fd/${fd}`);
          } catch {
            continue;
          }
          const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
          if (inode && listening.has(inode)) found.push(`pid ${pid} fd ${fd}`);
        }
      }
      return found;
    }

    it("a session's Chromium speaks DevTools over its pipe only: no process of it listens on a TCP port", async () => {
      const s = await standin("qr");
      const { engine } = makeEngine({ chromiumArgs: s.chromiumArgs });
      await engine.start();
      assert.equal(engine.status, "qr", "whatsapp-web.js drove the page over the pipe");
      const pids = processesMentioning(engine.userDataDir);
      const browserCmd = readFileSync(`/proc/${engine.browserPid}/cmdline`, "utf8").split("\0");
      assert.ok(browserCmd.includes("--remote-debugging-pipe"));
      for (const pid of pids) {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
        assert.doesNotMatch(cmd, /--remote-debugging-port/, `pid ${pid} was given a DevTools port`);
      }
      assert.ok(listeningInodes().size > 0, "the check sees listening sockets (the stand-in's, FerretDB's)");
      assert.deepEqual(listeningSocketsOf(pids), [], "no listening socket in any of the session's processes");
    });

    /** Runs test/support/chromium-child.ts (as `uid` when given) until its Chromium is up; `check`
     * sees the child's output and the browser's pid; the child and its Chromium are gone after. */
    async function withChromiumChild(
      dir: string,
      check: (output: string, browserPid: number) => void | Promise<void>,
      uid?: number,
    ): Promise<void> {
      const asUser = uid === undefined ? {} : { uid, gid: uid, env: { ...process.env, HOME: dir } };
      const child = spawn(
        process.execPath,
        ["--import", "tsx", join(ROOT, "test/support/chromium-child.ts"), "/usr/bin/chromium", dir],
        { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], ...asUser },
      );
      try {
        let output = ""; // the decision is logged on stdout (info) or stderr (warning)
        child.stderr.on("data", (b) => (output += b));
        const pid = await new Promise<number>((resolve, reject) => {
          child.stdout.on("data", (b) => {
            output += b;
            const launched = /"pid":(\d+)/.exec(output);
            if (launched) resolve(Number(launched[1]));
          });
          child.once("exit", (code) => reject(new Error(`exited ${code}: ${output}`)));
        });
        await check(output, pid);
      } finally {
        child.kill("SIGKILL");
        await waitFor(() => processesMentioning(dir).length === 0, { what: "the child's Chromium gone" });
        rmSync(dir, { recursive: true, force: true });
      }
    }

    /** The logged decision lines in a launcher's stderr. */
    const decisionLines = (stderr: string) => stderr.split("\n").filter((l) => /Chromium runs/.test(l));
    const passedNoSandbox = (dir: string) =>
      processesMentioning(dir).some((pid) =>
        readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("--no-sandbox"),
      );

    it("the sandbox decision and its reason are logged once by the process that launches Chromium", async () => {
      const dir = join(h.profileRoot, `sandbox${randomBytes(3).toString("hex")}`);
      await withChromiumChild(dir, (stderr) => {
        const expected = sandboxDecision(); // the same facts in this process
        const logged = decisionLines(stderr);
        assert.equal(logged.length, 1, stderr);
        assert.ok(logged[0].includes(expected.reason), logged[0]);
        assert.equal(
          passedNoSandbox(dir),
          !expected.sandbox,
          "--no-sandbox exactly when the sandbox cannot run",
        );
      });
    });

    it("as an unprivileged user where user namespaces work, Chromium runs sandboxed: its renderers get a namespace of their own", async function () {
      const nobody = 65534;
      const skip = (why: string) => {
        console.log(`      skipped: ${why}`);
        this.skip();
      };
      if (process.geteuid?.() !== 0) skip("only root can start the launcher as another user");
      const probe = spawnSync("unshare", ["--user", "true"], { uid: nobody, gid: nobody, stdio: "ignore" });
      if (probe.status !== 0) skip("this kernel or container forbids unprivileged user namespaces");
      const dir = mkdtempSync(join(tmpdir(), "sandboxed-"));
      chownSync(dir, nobody, nobody);
      await withChromiumChild(
        dir,
        (stderr, browserPid) => {
          const logged = decisionLines(stderr);
          assert.equal(logged.length, 1, stderr);
          assert.match(logged[0], /Chromium runs sandboxed: unprivileged user namespaces are available/);
          assert.equal(passedNoSandbox(dir), false, "no --no-sandbox");
          const ownNs = readlinkSync(`/proc/${browserPid}/ns/user`);
          const renderers = processesMentioning(dir).filter((pid) =>
            readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("--type=renderer"),
          );
          const sandboxed = processesMentioning(dir).filter(
            (pid) => readlinkSync(`/proc/${pid}/ns/user`) !== ownNs,
          );
          assert.ok(sandboxed.length > 0, "some child of the browser lives in a user namespace of its own");
          for (const pid of renderers) assert.ok(sandboxed.includes(pid), `renderer ${pid} is sandboxed`);
        },
        nobody,
      );
    });
  });
});
