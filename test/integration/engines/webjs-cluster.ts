// A cluster of worker PROCESSES running webjs sessions (real Chromium, real whatsapp-web.js) against
// the local WhatsApp Web stand-in, for the webjs failover spec and `npm run bench -- failover-webjs`.
// Each worker has a profile directory of its own, as on separate hosts, so a new owner cannot clean up
// the old one's browsers by path.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { MongoClient } from "mongodb";
import type { ServiceBroker } from "moleculer";
import AccountsService from "../../../services/accounts.service.ts";
import type { AccountView } from "../../../src/accounts/types.ts";
import { descendantsOf, processesMentioning } from "../../../src/engines/webjs/chromium.ts";
import { placementOf } from "../../../src/placement/kv.ts";
import { GridFsAuthStore } from "../../../src/store/auth-store.ts";
import { testSecrets } from "../../support/env.ts";
import { ProcessCluster } from "../../support/process-cluster.ts";
import { waitFor } from "../../support/wait.ts";
import type { Standin } from "../../support/whatsapp-standin.ts";
import { recorder, workspacesOn, type Recorded } from "../placement/failover-support.ts";

export interface WebjsCluster {
  pc: ProcessCluster;
  obs: ServiceBroker;
  events: Recorded[];
  profiles(node: string): string;
}

/**
 * Starts nats-server, FerretDB, webjs workers `nodes` and an observer (accounts service + event
 * recorder). `timings` as ProcessCluster's: test-sized by default, `{}` for the defaults of config.ts.
 */
export async function startWebjsCluster(
  standin: Standin,
  nodes: string[],
  env: Record<string, string> = {},
  timings?: Record<string, string>,
): Promise<WebjsCluster> {
  const pc = new ProcessCluster({ ENGINE: "webjs", STARTUP_TIMEOUT_MS: "30000", ...env }, timings);
  const profiles = (node: string) => join(pc.dir, "profiles", node);
  // Worker processes take their Chromium flags from no setting: a wrapper routes them to the stand-in.
  const chromium = join(pc.dir, "chromium-standin");
  const flags = standin.chromiumArgs.map((f) => `'${f}'`).join(" ");
  writeFileSync(chromium, `#!/bin/sh\nexec /usr/bin/chromium ${flags} "$@"\n`);
  chmodSync(chromium, 0o755);
  pc.env.CHROMIUM_PATH = chromium;
  await pc.startServers();
  await Promise.all(
    nodes.map(async (node) => {
      mkdirSync(profiles(node), { recursive: true });
      await pc.startWorker(node, { PROFILE_DIR: profiles(node) });
    }),
  );
  const events: Recorded[] = [];
  const obs = await pc.observer("obs", [AccountsService, recorder(events)]);
  await waitFor(
    () => {
      const live = placementOf(obs)?.mirror.liveNodes();
      return nodes.every((n) => live?.has(n) && obs.registry.nodes.get(n)?.available);
    },
    { what: "every worker live", timeoutMs: 30000 },
  );
  return { pc, obs, events, profiles };
}

/** The last status event of an account. */
export function statusOf(events: Recorded[], accountId: string): string | undefined {
  return events.filter((e) => e.event === "account.status" && e.payload.accountId === accountId).at(-1)
    ?.payload.status as string | undefined;
}

/** The phone number the stand-in links session `i` to. */
export const phoneOf = (i: number) => `4917000000${i}`;

/**
 * `count` webjs accounts in one workspace owned by `node`, each linked (playing the phone: one waiting
 * page at a time, each to a number of its own), connected, and with its link in its saved profile, so
 * a failover can restore it without a QR. `progress` hears each step.
 */
export async function linkedAccountsOn(
  c: WebjsCluster,
  standin: Standin,
  node: string,
  count: number,
  progress: (msg: string) => void = () => undefined,
): Promise<AccountView[]> {
  const [ws] = await workspacesOn(c.obs, node, 1, "webjs");
  const accounts: AccountView[] = [];
  for (let i = 0; i < count; i++)
    accounts.push((await c.obs.call("accounts.create", { workspaceId: ws, engine: "webjs" })) as AccountView);
  for (let i = 0; i < count; i++) {
    const phoneNumber = phoneOf(i);
    await waitFor(
      () =>
        standin.commandTo({ type: "scan", phoneNumber, pushName: `p${i}` }, { phoneNumber: "", limit: 1 }),
      { what: `a page waiting for scan ${i}`, timeoutMs: 40000, intervalMs: 100 },
    );
    await waitFor(() => standin.browsersOf(phoneNumber) === 1, { what: `${phoneNumber} linked` });
    progress(`linked ${i + 1}/${count}`);
  }
  await waitFor(() => accounts.every((a) => statusOf(c.events, a.id) === "connected"), {
    what: `every account connected on ${node}`,
    timeoutMs: 40000,
  });
  // Chromium writes Local Storage to disk seconds after the page did: wait until each saved profile
  // holds its link.
  const mongo = await MongoClient.connect(c.pc.mongoUrl);
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
  progress("profiles saved");
  return accounts;
}

/** Every process of a worker's browsers: by profile path, and as the worker's descendants. */
export function browsersOfWorker(c: WebjsCluster, node: string): number[] {
  const worker = c.pc.workers.get(node)!.child.pid!;
  return [...new Set([...processesMentioning(c.profiles(node)), ...descendantsOf(worker)])];
}

/** Alive and not a zombie (a killed process may stay a zombie until its new parent reaps it). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}
