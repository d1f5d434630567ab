// What every webjs engine spec shares: a database and a profile directory per spec, engines and
// stand-ins stopped after each test and no process left after the spec; and the /proc checks (every
// process of a session names its profile directory on its command line). WhatsApp Web is unreachable
// from here; a local HTTPS stand-in (test/support/whatsapp-standin.ts) makes the library's QR and
// pairing-code path run, or makes a start hang so that crashes and timeouts come at a known moment.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { MongoClient, type Db } from "mongodb";
import { ENGINE_EVENT_NAMES, type EngineEvents, type EngineOptions } from "../../../../src/engines/base.ts";
import {
  processesMentioning,
  processGroupMembers,
  processGroupOf,
} from "../../../../src/engines/webjs/chromium.ts";
import { WebjsEngine, type WebjsTuning } from "../../../../src/engines/webjs/index.ts";
import { GridFsAuthStore, type AuthStore } from "../../../../src/store/auth-store.ts";
import { mongoUrlFor, testEnv, testSecrets } from "../../../support/env.ts";
import { waitFor } from "../../../support/wait.ts";
import { startWhatsappStandin, type Standin } from "../../../support/whatsapp-standin.ts";

export interface Seen {
  event: keyof EngineEvents;
  args: unknown[];
  at: number;
  wall: number;
  /** Processes of the session alive at the moment of the event. */
  alive: number;
}

/** A process of the group of Chromium's main process `pid` (its supervisor leads the group) is alive.
 * The group is read while `pid` runs (`groupOf`), since a dead process has none. */
const groups = new Map<number, number>();
export function groupOf(pid: number): number {
  const group = processGroupOf(pid);
  if (group !== null) groups.set(pid, group);
  return groups.get(pid) ?? pid;
}
export function groupAlive(pid: number): boolean {
  return isAlive(pid) || processGroupMembers(groups.get(pid) ?? pid).length > 0;
}

/** The process is alive and not a zombie (a killed one may stay a zombie until reaped). */
export function isAlive(pid: number): boolean {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0];
    return state !== undefined && state !== "Z";
  } catch {
    return false;
  }
}

/** Registers the spec's hooks (call it in the top `describe`); `db` and `profileRoot` are set once its
 * `before` ran. */
export function webjsHarness() {
  const h = { db: undefined as unknown as Db, profileRoot: "", makeEngine, standin };
  let client: MongoClient;
  const engines: WebjsEngine[] = [];
  const standins: Standin[] = [];

  before(async () => {
    client = await MongoClient.connect(mongoUrlFor(`webjs${randomBytes(3).toString("hex")}`));
    h.db = client.db();
    h.profileRoot = mkdtempSync(join(testEnv.dataDir, "webjs-profiles-"));
  });

  afterEach(async () => {
    await Promise.all(engines.splice(0).map((e) => e.stop().catch(() => undefined)));
    await Promise.all(standins.splice(0).map((s) => s.close()));
  });

  after(async () => {
    await client.close();
    const leftovers = processesMentioning(h.profileRoot);
    assert.deepEqual(leftovers, [], "no process of any webjs session outlives the spec");
    rmSync(h.profileRoot, { recursive: true, force: true });
  });

  function makeEngine(
    tuning: WebjsTuning = {},
    opts: {
      startupTimeoutMs?: number;
      qr?: { firstTtlMs: number; refreshMs: number; max: number };
      sessionId?: string;
      startTurn?: () => Promise<() => void>;
      authStore?: AuthStore;
      logger?: EngineOptions["logger"];
    } = {},
  ) {
    const sessionId = opts.sessionId ?? `s${randomBytes(4).toString("hex")}`;
    const engine = new WebjsEngine({
      accountId: `a-${sessionId}`,
      workspaceId: "ws-webjs",
      sessionId,
      authStore: opts.authStore ?? new GridFsAuthStore(h.db, testSecrets()),
      qr: opts.qr ?? { firstTtlMs: 60000, refreshMs: 20000, max: 6 },
      chromiumPath: "/usr/bin/chromium",
      profileDir: h.profileRoot,
      startupTimeoutMs: opts.startupTimeoutMs ?? 15000,
      startTurn: opts.startTurn,
      logger: opts.logger,
      webjs: { restartBackoffMs: 100, destroyTimeoutMs: 1000, ...tuning },
    });
    engines.push(engine);
    const seen: Seen[] = [];
    const t0 = Date.now();
    for (const event of ENGINE_EVENT_NAMES) {
      engine.on(event, (...args: unknown[]) =>
        seen.push({
          event,
          args,
          at: Date.now() - t0,
          wall: Date.now(),
          alive: processesMentioning(engine.userDataDir).length,
        }),
      );
    }
    const first = (event: keyof EngineEvents, timeoutMs = 20000) =>
      waitFor(() => seen.find((s) => s.event === event), { what: `engine event '${event}'`, timeoutMs });
    return { engine, seen, first, sessionId };
  }

  async function standin(mode: "qr" | "hang", rotateMs?: number): Promise<Standin> {
    const s = await startWhatsappStandin({ mode, rotateMs });
    standins.push(s);
    return s;
  }

  return h;
}
