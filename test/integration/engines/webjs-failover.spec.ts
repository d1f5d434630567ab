// Browsers die with their worker: real worker PROCESSES run webjs sessions (real Chromium, real
// whatsapp-web.js) against the local WhatsApp Web stand-in, which counts the browsers linked to each
// session at once. A worker is SIGKILLed: every Chromium process it started must be gone within 1 s
// (checked by pid in /proc), and its sessions come back connected on the other worker from their saved
// profiles, without a QR, never two browsers for one session. Each worker has a profile directory of
// its own, as on separate hosts, so the new owner cannot clean up the old one's browsers by path.
import { testSecrets } from "../../support/env.ts";
import { strict as assert } from "node:assert";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { MongoClient } from "mongodb";
import type { ServiceBroker } from "moleculer";
import AccountsService from "../../../services/accounts.service.ts";
import type { AccountView } from "../../../src/accounts/types.ts";
import { descendantsOf, processesMentioning } from "../../../src/engines/webjs/chromium.ts";
import { GridFsAuthStore } from "../../../src/store/auth-store.ts";
import { placementOf } from "../../../src/placement/kv.ts";
import { ProcessCluster } from "../../support/process-cluster.ts";
import { waitFor } from "../../support/wait.ts";
import { startWhatsappStandin, type Standin } from "../../support/whatsapp-standin.ts";
import {
  recorder,
  Sampler,
  waitAllConnected,
  workspacesOn,
  type Recorded,
} from "../placement/failover-support.ts";

const SESSIONS = 5;

/** Alive and not a zombie (a killed process may stay a zombie until its new parent reaps it). */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

describe("webjs failover: SIGKILL of a worker takes its browsers with it", function () {
  this.timeout(120000);
  let pc: ProcessCluster;
  let obs: ServiceBroker;
  let standin: Standin;
  const events: Recorded[] = [];
  const profiles = (node: string) => join(pc.dir, "profiles", node);

  async function startWorker(node: string) {
    mkdirSync(profiles(node), { recursive: true });
    await pc.startWorker(node, { PROFILE_DIR: profiles(node) });
  }

  beforeEach(async function () {
    this.timeout(120000);
    standin = await startWhatsappStandin({ mode: "qr" });
    pc = new ProcessCluster({
      ENGINE: "webjs",
      STARTUP_TIMEOUT_MS: "30000",
      START_CONCURRENCY: "3",
      // Chromium start storms starve a 2-core machine: a lease short enough for simulated sessions
      // would lapse under them and fence the worker before the test begins.
      LEASE_RENEW_MS: "1000",
      LEASE_TTL_MS: "5000",
    });
    // Worker processes take their Chromium flags from no setting: a wrapper routes them to the stand-in.
    const chromium = join(pc.dir, "chromium-standin");
    const flags = standin.chromiumArgs.map((f) => `'${f}'`).join(" ");
    writeFileSync(chromium, `#!/bin/sh\nexec /usr/bin/chromium ${flags} "$@"\n`);
    chmodSync(chromium, 0o755);
    pc.env.CHROMIUM_PATH = chromium;
    await pc.startServers();
    await Promise.all(["w1", "w2"].map(startWorker));
    obs = await pc.observer("obs", [AccountsService, recorder(events)]);
    await waitFor(
      () => {
        const live = placementOf(obs)?.mirror.liveNodes();
        return ["w1", "w2"].every((n) => live?.has(n) && obs.registry.nodes.get(n)?.available);
      },
      { what: "both workers live", timeoutMs: 30000 },
    );
  });

  afterEach(async function () {
    this.timeout(60000);
    const dir = pc.dir;
    await pc.stop(); // SIGKILLs the workers: their browsers must follow them
    await standin.close();
    events.splice(0);
    await waitFor(() => processesMentioning(dir).length === 0, {
      what: "no browser of the spec left",
      timeoutMs: 5000,
    });
  });

  const statusOf = (id: string) =>
    events.filter((e) => e.event === "account.status" && e.payload.accountId === id).at(-1)?.payload
      .status as string | undefined;

  it(`SIGKILL of a worker with ${SESSIONS} sessions: its Chromium gone within 1 s, sessions back elsewhere, no QR, never two browsers`, async () => {
    const [ws] = await workspacesOn(obs, "w1", 1, "webjs");
    const accounts: AccountView[] = [];
    for (let i = 0; i < SESSIONS; i++) {
      accounts.push((await obs.call("accounts.create", { workspaceId: ws, engine: "webjs" })) as AccountView);
    }
    // Play the phone: link one waiting page at a time, each to a number of its own.
    for (let i = 0; i < SESSIONS; i++) {
      const phoneNumber = `4917000000${i}`;
      await waitFor(
        () =>
          standin.commandTo({ type: "scan", phoneNumber, pushName: `p${i}` }, { phoneNumber: "", limit: 1 }),
        { what: `a page waiting for scan ${i}`, timeoutMs: 40000, intervalMs: 100 },
      );
      await waitFor(() => standin.browsersOf(phoneNumber) === 1, { what: `${phoneNumber} linked` });
    }
    await waitFor(() => accounts.every((a) => statusOf(a.id) === "connected"), {
      what: "every account connected on w1",
      timeoutMs: 40000,
    });
    // A failover restores what was saved: wait until each saved profile holds its link (Chromium
    // writes Local Storage to disk seconds after the page did).
    const mongo = await MongoClient.connect(pc.mongoUrl);
    try {
      const store = new GridFsAuthStore(mongo.db(), testSecrets());
      await waitFor(
        async () => {
          const blobs = await Promise.all(accounts.map((a) => store.load(a.sessionId)));
          return blobs.every((b) => b && gunzipSync(b).includes("standin-linked"));
        },
        { what: "every session's saved profile to hold its link", timeoutMs: 30000, intervalMs: 500 },
      );
    } finally {
      await mongo.close();
    }
    // Every process of w1's browsers: by profile path, and as w1's descendants (a check on the first).
    const worker = pc.workers.get("w1")!.child.pid!;
    const browsers = [...new Set([...processesMentioning(profiles("w1")), ...descendantsOf(worker)])];
    assert.ok(browsers.length >= SESSIONS * 3, `w1 runs its browsers: ${browsers.length} processes`);

    const mark = events.length;
    const sampler = new Sampler(obs, () => ["w2"], "w1").start();
    const killedAt = Date.now();
    pc.kill("w1", "SIGKILL");
    try {
      await waitFor(() => browsers.every((pid) => !isAlive(pid)), {
        what: `w1's ${browsers.length} browser processes to die`,
        timeoutMs: 5000,
        intervalMs: 10,
      });
      const goneAfter = Date.now() - killedAt;
      console.log(`      ${browsers.length} Chromium processes of w1 gone ${goneAfter} ms after SIGKILL`);
      assert.ok(goneAfter <= 1000, `w1's browsers died ${goneAfter} ms after it (at most 1000 ms)`);
      assert.deepEqual(processesMentioning(profiles("w1")), [], "no process of w1's profiles survives");

      await waitAllConnected(
        obs,
        () => ["w2"],
        accounts.map((a) => a.id),
        "w1's sessions connected on w2",
        60000,
        "w1",
      );
    } finally {
      await sampler.stop();
    }
    const times = [...sampler.firstConnectedElsewhere.values()].map((t) => t - killedAt);
    console.log(
      `      ${times.length} sessions connected on w2, the last ${Math.max(...times)} ms after SIGKILL`,
    );
    const moved = new Set(accounts.map((a) => a.id));
    const qrs = events.slice(mark).filter((e) => e.event === "account.qr" && moved.has(e.payload.accountId));
    assert.deepEqual(qrs, [], "a moved session asked for a QR");
    assert.deepEqual(sampler.scanning(moved), [], "a moved session was seen waiting for a scan");
    for (let i = 0; i < SESSIONS; i++) assert.equal(standin.browsersOf(`4917000000${i}`), 1);
    assert.deepEqual(
      [...standin.maxBrowsers].filter(([, n]) => n > 1),
      [],
      "the stand-in saw two browsers of one session at once",
    );
    assert.equal(standin.maxBrowsers.size, SESSIONS);
  });
});
