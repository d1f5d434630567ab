// `npm start` for real: scripts/start.ts brings up its own nats-server, FerretDB, gateway and workers,
// prints the ready line with the real port, the URL answers, and after SIGINT nothing it started is
// left alive (checked by the pids it reports and by an environment marker every descendant inherits).
import { strict as assert } from "node:assert";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, ROOT, startNats, type RunningServer } from "../../src/dev/servers.ts";
import { mongoUrlFor } from "../support/env.ts";
import { waitFor } from "../support/wait.ts";

const READY_LINE = /^Switchboard ready: (http:\/\/127\.0\.0\.1:(\d+)) admin key: (\S+)$/m;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie still answers kill(0); it has ended all the same.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** Live processes whose environment contains `mark`. */
function processesWithEnv(mark: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes(mark) && alive(pid))
        found.push(pid);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

describe("npm start (scripts/start.ts)", function () {
  let child: ChildProcess | undefined;
  let dataDir = "";

  afterEach(() => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("prints the ready line with the real port, answers on it, and leaves no process behind after SIGINT", async function () {
    this.timeout(120000);
    const port = await freePort();
    dataDir = mkdtempSync(join(tmpdir(), "switchboard-start-"));
    const mark = `SWITCHBOARD_START_TEST=${randomBytes(6).toString("hex")}`;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PORT: String(port),
      WORKERS: "2",
      ENGINE: "simulated",
      DATA_DIR: dataDir,
      LOG_LEVEL: "warn",
      [mark.split("=")[0]]: mark.split("=")[1],
    };
    // The embedded servers are part of what `npm start` does: start its own.
    delete env.NATS_URL;
    delete env.MONGO_URL;
    delete env.ADMIN_API_KEY;

    const t0 = Date.now();
    child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "scripts", "start.ts")], {
      cwd: ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr!.on("data", (b: Buffer) => (out += b.toString()));
    const exited = new Promise<number | null>((res) => child!.once("exit", (code) => res(code)));

    const ready = await waitFor(() => out.match(READY_LINE) ?? (child!.exitCode !== null ? "exited" : null), {
      timeoutMs: 60000,
      intervalMs: 100,
      what: "the ready line",
    }).catch((err: Error) => {
      throw new Error(`${err.message}\n--- output ---\n${out}`);
    });
    assert.notEqual(ready, "exited", `start.ts exited before ready:\n${out}`);
    const [, url, readyPort, key] = ready as RegExpMatchArray;
    const readyMs = Date.now() - t0;
    console.log(`      ready line after ${readyMs} ms`);
    assert.equal(Number(readyPort), port);
    assert.ok(key.length >= 16, "a generated admin key is printed");
    assert.equal((out.match(/^Switchboard ready:/gm) ?? []).length, 1, "exactly one ready line");

    const pidsLine = out.match(/^\[start\] processes: (.*)$/m);
    assert.ok(pidsLine, `start.ts reports the processes it started:\n${out}`);
    const pids = new Map(pidsLine[1].split(" ").map((kv) => kv.split("=") as [string, string]));
    assert.ok(pids.has("nats-server") && pids.has("ferretdb"), pidsLine[1]);
    for (const [name, pid] of pids) assert.ok(alive(Number(pid)), `${name} (${pid}) is running`);

    if (existsSync(join(ROOT, "services", "api.service.ts"))) {
      assert.ok(pids.has("gateway") && pids.has("worker-1") && pids.has("worker-2"), pidsLine[1]);
      assert.match(out, /waited for GET \/health\/ready answered 200/);
      const res = await fetch(`${url}/health/ready`);
      assert.equal(res.status, 200, `GET ${url}/health/ready`);
    } else {
      // Until the gateway exists nothing listens on the URL; start.ts must say what it waited for.
      assert.match(out, /waited for the brokers to join NATS only: no api service exists yet/);
    }

    const processes = processesWithEnv(mark);
    assert.ok(processes.length >= pids.size, `descendants carry the marker: ${processes.join(",")}`);

    child.kill("SIGINT");
    const code = await Promise.race([
      exited,
      new Promise((_, rej) => setTimeout(() => rej(new Error(`no exit 40 s after SIGINT:\n${out}`)), 40000)),
    ]);
    assert.equal(code, 0, `exit code after SIGINT; output:\n${out}`);
    for (const [name, pid] of pids) assert.ok(!alive(Number(pid)), `${name} (${pid}) is still alive`);
    assert.deepEqual(processesWithEnv(mark), [], "no process started by npm start is alive");
  });

  it("joins a NATS_URL that carries credentials and prints it redacted", async function () {
    this.timeout(120000);
    const password = `start-secret-${randomBytes(6).toString("hex")}`;
    dataDir = mkdtempSync(join(tmpdir(), "switchboard-start-"));
    writeFileSync(join(dataDir, "nats.conf"), `authorization {\n  user: sb\n  password: "${password}"\n}\n`);
    let nats: RunningServer | undefined;
    try {
      nats = await startNats(join(dataDir, "nats"), 0, { configFile: join(dataDir, "nats.conf") });
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        PORT: String(await freePort()),
        WORKERS: "1",
        ENGINE: "simulated",
        DATA_DIR: dataDir,
        LOG_LEVEL: "warn",
        NATS_URL: `nats://sb:${password}@127.0.0.1:${nats.port}`,
        MONGO_URL: mongoUrlFor(`start${randomBytes(4).toString("hex")}`),
      };
      delete env.ADMIN_API_KEY;
      child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "scripts", "start.ts")], {
        cwd: ROOT,
        env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
      child.stderr!.on("data", (b: Buffer) => (out += b.toString()));
      const exited = new Promise<number | null>((res) => child!.once("exit", (code) => res(code)));
      const ready = await waitFor(
        () => READY_LINE.test(out) || (child!.exitCode !== null ? "exited" : null),
        {
          timeoutMs: 60000,
          intervalMs: 100,
          what: "the ready line",
        },
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n--- output ---\n${out}`);
      });
      assert.equal(ready, true, `start.ts exited before ready:\n${out}`);
      assert.ok(out.includes(`using NATS at nats://***@127.0.0.1:${nats.port} (NATS_URL)`), out);
      child.kill("SIGINT");
      assert.equal(await exited, 0, `exit code after SIGINT; output:\n${out}`);
      assert.ok(!out.includes(password), `the NATS password is printed:\n${out}`);
    } finally {
      await nats?.stop();
    }
  });
});
