// Browsers die with their worker: real worker PROCESSES run webjs sessions (real Chromium, real
// whatsapp-web.js) against the local WhatsApp Web stand-in, which counts the browsers linked to each
// session at once. A worker is SIGKILLed: every Chromium process it started must be gone within 1 s
// (checked by pid in /proc), and its sessions come back connected on the other worker from their saved
// profiles, without a QR, never two browsers for one session. Each worker has a profile directory of
// its own, as on separate hosts, so the new owner cannot clean up the old one's browsers by path.
import { strict as assert } from "node:assert";
import { processesMentioning } from "../../../src/engines/webjs/chromium.ts";
import { waitFor } from "../../support/wait.ts";
import { startWhatsappStandin, type Standin } from "../../support/whatsapp-standin.ts";
import { Sampler, waitAllConnected } from "../placement/failover-support.ts";
import {
  browsersOfWorker,
  isAlive,
  linkedAccountsOn,
  phoneOf,
  startWebjsCluster,
  type WebjsCluster,
} from "./webjs-cluster.ts";

const SESSIONS = 5;

describe("webjs failover: SIGKILL of a worker takes its browsers with it", function () {
  this.timeout(120000);
  let c: WebjsCluster;
  let standin: Standin;

  beforeEach(async function () {
    this.timeout(120000);
    standin = await startWhatsappStandin({ mode: "qr" });
    c = await startWebjsCluster(standin, ["w1", "w2"], {
      START_CONCURRENCY: "3",
      // Chromium start storms starve a 2-core machine: a lease short enough for simulated sessions
      // would lapse under them and fence the worker before the test begins.
      LEASE_RENEW_MS: "1000",
      LEASE_TTL_MS: "5000",
    });
  });

  afterEach(async function () {
    this.timeout(60000);
    const dir = c?.pc.dir;
    await c?.pc.stop(); // SIGKILLs the workers: their browsers must follow them
    await standin.close();
    if (dir)
      await waitFor(() => processesMentioning(dir).length === 0, {
        what: "no browser of the spec left",
        timeoutMs: 5000,
      });
  });

  it(`SIGKILL of a worker with ${SESSIONS} sessions: its Chromium gone within 1 s, sessions back elsewhere, no QR, never two browsers`, async () => {
    const accounts = await linkedAccountsOn(c, standin, "w1", SESSIONS);
    const { pc, obs, events } = c;
    const browsers = browsersOfWorker(c, "w1");
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
      assert.deepEqual(processesMentioning(c.profiles("w1")), [], "no process of w1's profiles survives");

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
    for (let i = 0; i < SESSIONS; i++) assert.equal(standin.browsersOf(phoneOf(i)), 1);
    assert.deepEqual(
      [...standin.maxBrowsers].filter(([, n]) => n > 1),
      [],
      "the stand-in saw two browsers of one session at once",
    );
    assert.equal(standin.maxBrowsers.size, SESSIONS);
  });
});
