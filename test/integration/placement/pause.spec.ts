// A worker frozen for 2 s (a long GC pause, a network blip) at the DEFAULT lease timings: nothing moves.
// Its lease must outlive the freeze even when the freeze begins just before a renewal was due, and the
// node must not fence itself when it thaws. Worker processes, so the freeze is a real SIGSTOP.
import { strict as assert } from "node:assert";
import type { ServiceBroker } from "moleculer";
import AccountsService from "../../../services/accounts.service.ts";
import { loadConfig } from "../../../src/config.ts";
import { placementOf } from "../../../src/placement/kv.ts";
import { ProcessCluster } from "../../support/process-cluster.ts";
import { waitFor } from "../../support/wait.ts";
import {
  connectedAccounts,
  knowsRecorder,
  sessionsOf,
  recorder,
  Sampler,
  type Recorded,
} from "./failover-support.ts";

const WORKERS = ["w1", "w2", "w3"];
const FREEZE_MS = 2000;

describe("placement: a 2 s freeze of a worker at the default timings moves nothing", function () {
  this.timeout(120000);
  let pc: ProcessCluster;
  let obs: ServiceBroker;
  const events: Recorded[] = [];
  const defaults = loadConfig();

  beforeEach(async function () {
    this.timeout(120000);
    // `{}`: the workers run the defaults of src/config.ts, not the test-sized timings.
    pc = new ProcessCluster({}, {});
    await pc.startServers();
    await Promise.all(WORKERS.map((id) => pc.startWorker(id)));
    obs = await pc.observer("obs", [AccountsService, recorder(events)]);
    const o = obs;
    await waitFor(
      async () =>
        placementOf(o)!.mirror.liveNodes().size === WORKERS.length &&
        WORKERS.every((w) => o.registry.nodes.get(w)?.available) &&
        (await Promise.all(WORKERS.map((w) => knowsRecorder(o, w)))).every(Boolean),
      { what: "workers live and knowing the observer", timeoutMs: 60000, intervalMs: 250 },
    );
  });

  afterEach(async function () {
    this.timeout(60000);
    for (const w of pc?.workers.values() ?? []) w.child.kill("SIGCONT");
    await pc?.stop();
    events.length = 0;
  });

  it("SIGSTOP for 2 s just before a renewal, then SIGCONT: no workspace claimed away, no fence, no restart", async () => {
    const workspaces = Array.from({ length: 12 }, (_, i) => `pause-${i}`);
    await connectedAccounts(obs, events, workspaces, 3);
    const perNode = await Promise.all(WORKERS.map(async (w) => ({ w, list: await sessionsOf(obs, w) })));
    const victim = perNode.reduce((a, b) => (b.list.length > a.list.length ? b : a));
    assert.ok(victim.list.length > 0, "the victim runs sessions");
    const ids = new Set(victim.list.map((s) => s.accountId));
    const placement = placementOf(obs)!;
    const placementChanges: string[] = [];
    const onPlacement = (ws: string) => void placementChanges.push(ws);
    placement.mirror.on("placement", onPlacement);
    const mark = events.length;
    const outputMark = pc.workers.get(victim.w)!.output.length;
    const survivors = WORKERS.filter((w) => w !== victim.w);
    const sampler = new Sampler(obs, () => WORKERS).start();
    try {
      // The worst moment: the freeze begins just before the next renewal, so the lease has to last
      // a renewal period plus the freeze. Wait for a fresh renewal, then freeze 50 ms before the next.
      const first = (await placement.nodesKv.get(victim.w))!.created.getTime();
      const renewed = await waitFor(
        async () => {
          const t = (await placement.nodesKv.get(victim.w))!.created.getTime();
          return t > first ? t : 0;
        },
        { what: "a renewal of the victim's lease", intervalMs: 5 },
      );
      await new Promise((r) => setTimeout(r, Math.max(0, renewed + defaults.leaseRenewMs - 50 - Date.now())));
      pc.kill(victim.w, "SIGSTOP");
      // The fault itself lasts a fixed time: there is no condition to wait for while the node is frozen.
      await new Promise((r) => setTimeout(r, FREEZE_MS));
      pc.kill(victim.w, "SIGCONT");
      const thawedAt = Date.now();
      // Until a lease taken before the freeze would have expired on the server, and its holder fenced.
      await waitFor(
        async () =>
          (await placement.nodesKv.get(victim.w))!.created.getTime() > thawedAt + defaults.leaseTtlMs,
        { what: "the victim renewing for a whole TTL after the thaw", timeoutMs: 15000, intervalMs: 100 },
      );
    } finally {
      placement.mirror.off("placement", onPlacement);
      await sampler.stop();
    }
    const output = pc.workers.get(victim.w)!.output.slice(outputMark).join("");
    assert.doesNotMatch(output, /lapsed: fencing/, "the frozen worker fenced itself");
    assert.deepEqual(placementChanges, [], "a workspace changed owner");
    assert.deepEqual(sampler.duplicates, []);
    const after = await sessionsOf(obs, victim.w);
    assert.deepEqual(
      after.filter((s) => ids.has(s.accountId) && s.status === "connected").length,
      ids.size,
      "every session of the frozen worker still runs there, connected",
    );
    for (const w of survivors) {
      const theirs = await sessionsOf(obs, w);
      assert.ok(!theirs.some((s) => ids.has(s.accountId)), `${w} started a session of the frozen worker`);
    }
    const statusChanges = events
      .slice(mark)
      .filter((e) => e.event === "account.status" && ids.has(e.payload.accountId));
    assert.deepEqual(statusChanges, [], "a session of the frozen worker changed status");
  });
});
