// Issue "Integrity": a worker killed with SIGKILL must not leave its Chromium driving the session while
// the next owner starts another. Every process of the browser (group, zygote, renderers, the crash
// handler outside the group) is gone within 1 s of its Node process dying.
import { strict as assert } from "node:assert";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import {
  descendantsOf,
  killSessionProcesses,
  processesMentioning,
  processGroupMembers,
} from "../../../src/engines/webjs/chromium.ts";
import { ROOT } from "../../../src/dev/servers.ts";
import { waitFor } from "../../support/wait.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

describe("webjs: Chromium dies with its Node process", function () {
  this.timeout(60000);
  let dir = "";
  let child: ChildProcess | null = null;

  afterEach(async () => {
    child?.kill("SIGKILL");
    child = null;
    if (dir) {
      await killSessionProcesses(dir).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("SIGKILL of the Node process that launched it: every browser process gone within 1 s", async () => {
    dir = mkdtempSync(join(tmpdir(), "sb-parent-death-"));
    child = spawn(
      process.execPath,
      ["--import", "tsx", join(ROOT, "test/support/chromium-child.ts"), CHROMIUM, dir],
      {
        cwd: ROOT,
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    const [line] = (await Promise.race([
      once(child.stdout!, "data"),
      once(child, "exit").then(([code]) => {
        throw new Error(`the launching process exited early (code ${code})`);
      }),
    ])) as [Buffer];
    const { pid } = JSON.parse(line.toString()) as { pid: number };
    const alive = () => [
      ...new Set([...processGroupMembers(pid), ...descendantsOf(pid), ...processesMentioning(dir)]),
    ];
    const browser = await waitFor(() => (alive().length >= 3 ? alive() : undefined), {
      what: "Chromium's processes (browser, zygote, renderer)",
    });
    const killedAt = Date.now();
    child.kill("SIGKILL");
    await waitFor(() => alive().length === 0, {
      what: `every Chromium process (${browser.length} seen) to be gone`,
      timeoutMs: 5000,
      intervalMs: 20,
    });
    const ms = Date.now() - killedAt;
    console.log(
      `      ${browser.length} Chromium processes gone ${ms} ms after SIGKILL of their Node process`,
    );
    assert.ok(ms <= 1000, `Chromium outlived its Node process by ${ms} ms`);
  });
});
