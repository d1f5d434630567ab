// `npm run bench -- density [--json] [--sessions 10] [--settle-ms 60000] [--chromium-args="--a --b"] [--single-process | --multi-process]`
//
// Real-session density: memory per webjs session on this machine. Starts `sessions` WebjsEngines
// (real Chromium, real whatsapp-web.js) against the local WhatsApp Web stand-in, links each one with
// the stand-in's scan command (the phone's side), waits until every session is connected and the
// memory of the browsers has settled, then reads /proc/<pid>/smaps_rollup of each session's processes.
//
// Attribution of shared memory: PSS (proportional set size) splits each page shared by N processes
// into N equal parts, so the Chromium binary, fonts and ICU data mapped by every browser process of
// every session are charged a tenth to each of 10 sessions; the sum of PSS over the sessions is what
// their processes really cost the machine. USS (pages private to the session) is the floor and the
// RSS sum the ceiling (shared pages counted once per process). The worker's own Node process (one per
// node, not per session) is not counted. `--chromium-args` adds flags, for trying a tuning.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MongoClient } from "mongodb";
import { memoryOf, processesMentioning } from "../src/engines/webjs/chromium.ts";
import {
  runsSingleProcess,
  sandboxDecision,
  sessionFlags,
  type ProcessModel,
} from "../src/engines/webjs/flags.ts";
import { WebjsEngine } from "../src/engines/webjs/index.ts";
import { startMongoWire, type RunningServer } from "../src/dev/servers.ts";
import { GridFsAuthStore } from "../src/store/auth-store.ts";
import { waitFor } from "../test/support/wait.ts";
import { startWhatsappStandin, type Standin } from "../test/support/whatsapp-standin.ts";
import type { BenchArgs } from "./index.ts";
import { numberOption } from "./support/options.ts";

const log = (...a: unknown[]) => console.error("[bench density]", ...a);
const mb = (kb: number) => Math.round((kb / 1024) * 10) / 10;
/** WAHA's published figure for its webjs engine: 50 sessions on a 20 GB server. */
const WAHA_SESSIONS_PER_GB = 50 / 20;

interface SessionMemory {
  processes: number;
  pssKb: number;
  ussKb: number;
  rssKb: number;
}

/** Memory of every session, read at one moment. */
function sample(engines: WebjsEngine[]): SessionMemory[] {
  return engines.map((e) => memoryOf(processesMentioning(e.userDataDir)));
}

const totalPss = (s: SessionMemory[]) => s.reduce((sum, m) => sum + m.pssKb, 0);

export async function run(args?: BenchArgs) {
  const sessions = numberOption(args, "sessions", 10);
  const settleMs = numberOption(args, "settle-ms", 60_000);
  const extra = args?.options["chromium-args"];
  const chromiumArgs = typeof extra === "string" ? extra.split(/\s+/).filter(Boolean) : [];
  // CHROMIUM_SINGLE_PROCESS as a worker reads it: --single-process forces one process, --multi-process
  // Chromium's own model; without either, the default ("auto": one process where the sandbox cannot run).
  const processModel: ProcessModel =
    args?.options["single-process"] === true
      ? true
      : args?.options["multi-process"] === true
        ? false
        : "auto";
  const singleProcess = runsSingleProcess(processModel);
  const dir = mkdtempSync(join(tmpdir(), "switchboard-bench-density-"));
  const profiles = join(dir, "profiles");
  mkdirSync(profiles);
  let mongo: RunningServer | null = null;
  let client: MongoClient | null = null;
  let standin: Standin | null = null;
  const engines: WebjsEngine[] = [];
  try {
    mongo = await startMongoWire(join(dir, "mongo"), 0, "benchdensity");
    client = await MongoClient.connect(mongo.url);
    standin = await startWhatsappStandin({ mode: "qr" });
    const authStore = new GridFsAuthStore(client.db());
    log(`${sessions} sessions; flags: ${[...sessionFlags({ singleProcess }), ...chromiumArgs].join(" ")}`);

    const started = Date.now();
    // One at a time, as a worker with START_CONCURRENCY 1 would: 2 cores, and launches are the peak.
    for (let i = 0; i < sessions; i++) {
      const phoneNumber = `4916000000${String(i).padStart(2, "0")}`;
      const engine = new WebjsEngine({
        accountId: `density-${i}`,
        workspaceId: "bench-density",
        sessionId: `density${i}`,
        authStore,
        qr: { firstTtlMs: 600_000, refreshMs: 600_000, max: 6 },
        profileDir: profiles,
        startupTimeoutMs: 120_000,
        chromiumSingleProcess: processModel,
        webjs: { chromiumArgs: [...standin.chromiumArgs, ...chromiumArgs], launchTimeoutMs: 60_000 },
      });
      engines.push(engine);
      let failure = "";
      engine.on("failed", (reason, message) => (failure = `${reason}: ${message}`));
      await engine.start();
      if (engine.status !== "qr")
        throw new Error(`session ${i} is ${engine.status}, not showing a QR ${failure}`);
      const s = standin;
      await waitFor(
        () => s.commandTo({ type: "scan", phoneNumber, pushName: `d${i}` }, { phoneNumber: "", limit: 1 }),
        {
          what: `a page of session ${i} waiting for a scan`,
          timeoutMs: 30_000,
          intervalMs: 100,
        },
      );
      await waitFor(() => engine.status === "connected" || failure, {
        what: `session ${i} connected`,
        timeoutMs: 60_000,
        intervalMs: 100,
      });
      if (failure) throw new Error(`session ${i} failed: ${failure}`);
      const now = sample(engines);
      log(
        `session ${i + 1}/${sessions} connected after ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
          `PSS so far ${mb(totalPss(now))} MB (${mb(totalPss(now) / engines.length)} MB/session)`,
      );
    }
    const allConnectedMs = Date.now() - started;

    // Settled: every session still connected and the total PSS moved by less than 2 % over 5 s
    // (Chromium trims and V8 collects for a while after the page loads), or `settleMs` passed.
    const settleStart = Date.now();
    let previous = totalPss(sample(engines));
    let settled = false;
    while (Date.now() - settleStart < settleMs) {
      await new Promise((r) => setTimeout(r, 5000)); // one sampling period of the stability check
      const current = totalPss(sample(engines));
      const change = Math.abs(current - previous) / previous;
      log(`settling: total PSS ${mb(current)} MB (${(change * 100).toFixed(1)} % in 5 s)`);
      previous = current;
      if (change < 0.02) {
        settled = true;
        break;
      }
    }
    const notConnected = engines.filter((e) => e.status !== "connected").length;
    if (notConnected) throw new Error(`${notConnected} sessions are no longer connected`);
    const final = sample(engines);
    const pss = totalPss(final) / sessions;
    const perSession = {
      pssMB: mb(pss),
      ussMB: mb(final.reduce((s, m) => s + m.ussKb, 0) / sessions),
      rssSumMB: mb(final.reduce((s, m) => s + m.rssKb, 0) / sessions),
      processes: Math.round((final.reduce((s, m) => s + m.processes, 0) / sessions) * 10) / 10,
      minPssMB: mb(Math.min(...final.map((m) => m.pssKb))),
      maxPssMB: mb(Math.max(...final.map((m) => m.pssKb))),
    };
    const sessionsPerGB = Math.round((1024 / (pss / 1024)) * 10) / 10;
    log(`${sessions} sessions: ${perSession.pssMB} MB PSS per session, ${sessionsPerGB} sessions/GB`);
    return {
      bench: "density",
      sessions,
      engine: "webjs",
      // One process runs no sandbox; the reason says why "auto" chose it.
      sandbox: singleProcess ? { ...sandboxDecision(), sandbox: false } : sandboxDecision(),
      processModel,
      singleProcess,
      flags: [...sessionFlags({ singleProcess }), ...chromiumArgs],
      allConnectedMs,
      settled,
      perSession,
      totalPssMB: mb(totalPss(final)),
      sessionsPerGB,
      waha: { sessionsPerGB: WAHA_SESSIONS_PER_GB, published: "50 sessions / 20 GB" },
    };
  } finally {
    await Promise.all(engines.map((e) => e.stop({ force: true }).catch(() => undefined)));
    await standin?.close();
    await client?.close();
    await mongo?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
