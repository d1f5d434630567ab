// Failover, drain and restarts with real worker PROCESSES (`tsx scripts/node.ts`) on a nats-server and
// FerretDB of this spec's own (fixed ports, so each can be restarted in place). Throughout, every node's
// session list is polled: a session seen on two nodes in one sample fails the test.
import { strict as assert } from "node:assert";
import type { ServiceBroker } from "moleculer";
import AccountsService from "../../../services/accounts.service.ts";
import type { AccountView } from "../../../src/accounts/types.ts";
import type { NodeRecord } from "../../../src/placement/liveness.ts";
import { placementOf } from "../../../src/placement/kv.ts";
import { ProcessCluster } from "../../support/process-cluster.ts";
import { waitFor } from "../../support/wait.ts";
import {
  connectedAccounts,
  knowsRecorder,
  localOf,
  sessionsOf,
  recorder,
  Sampler,
  waitAllConnected,
  workspacesOn,
  type Recorded,
} from "./failover-support.ts";

const WORKERS = ["w1", "w2", "w3", "w4"];

describe("placement: failover, drain and restarts with worker processes", function () {
  this.timeout(180000);
  let pc: ProcessCluster;
  let obs: ServiceBroker;
  const events: Recorded[] = [];
  const all: AccountView[] = [];
  let running = [...WORKERS];

  const ids = () => all.map((a) => a.id);
  const qrsSince = (mark: number, accountIds: Set<string>) =>
    events.slice(mark).filter((e) => e.event === "account.qr" && accountIds.has(e.payload.accountId));

  async function workersSeen(expected: string[], timeoutMs = 30000) {
    await waitFor(
      () => {
        const live = placementOf(obs)!.mirror.liveNodes();
        return (
          expected.every((n) => live.has(n) && !live.get(n)!.draining) &&
          expected.every((n) => obs.registry.nodes.get(n)?.available)
        );
      },
      { what: `workers ${expected} to be live`, timeoutMs },
    );
    // Their broadcasts must reach the recorder here before the test counts on them.
    await waitFor(
      async () => (await Promise.all(expected.map((n) => knowsRecorder(obs, n)))).every(Boolean),
      {
        what: "every worker to know the recorder",
        timeoutMs,
        intervalMs: 200,
      },
    );
  }

  before(async function () {
    this.timeout(180000);
    // 100 sessions on one worker, and a survivor takes a third of them: room beyond the default 50.
    pc = new ProcessCluster({ SESSION_CAPACITY: "500" });
    await pc.startServers();
    await Promise.all(WORKERS.map((id) => pc.startWorker(id)));
    obs = await pc.observer("obs", [AccountsService, recorder(events)]);
    await workersSeen(WORKERS);
  });

  after(async function () {
    this.timeout(60000);
    await pc?.stop();
  });

  /** Whatever a test left changed (a server down, a worker killed, frozen or draining) is put back, so
   * one failure cannot cascade into the tests after it. */
  afterEach(async function () {
    this.timeout(120000);
    if (!pc.nats) await pc.startNats();
    if (!pc.mongo) await pc.startMongo();
    const live = placementOf(obs)!.mirror.liveNodes();
    for (const id of WORKERS) {
      const w = pc.workers.get(id);
      w?.child.kill("SIGCONT");
      const exited = !w || w.child.exitCode !== null || w.child.signalCode !== null;
      if (!exited && !live.get(id)?.draining) continue;
      if (w) await pc.stopWorker(id);
      await pc.startWorker(id);
    }
    running = [...WORKERS];
    // Four workers starting at once and taking back every session: slow on a loaded machine (30 s
    // were not enough once, with the suite's CPU burners and a linter running beside it).
    await workersSeen(WORKERS, 90000);
  });

  it("SIGKILL of a worker with 100 connected sessions: all connected on survivors, no QR, never twice", async () => {
    const wss = await workspacesOn(obs, "w1", 25, "kill");
    const accounts = await connectedAccounts(obs, events, wss, 4);
    all.push(...accounts);
    assert.equal((await sessionsOf(obs, "w1")).length, 100);
    const moved = new Set(accounts.map((a) => a.id));
    const mark = events.length;
    const survivors = WORKERS.filter((n) => n !== "w1");
    const sampler = new Sampler(obs, () => survivors, "w1").start();
    const killedAt = Date.now();
    pc.kill("w1", "SIGKILL");
    running = survivors;
    try {
      await waitAllConnected(
        obs,
        () => survivors,
        [...moved],
        "w1's 100 sessions connected on survivors",
        30000,
        "w1",
      );
      // The sampler may not have polled since the last of them connected: wait for its sample.
      await waitFor(
        () => [...moved].every((id) => survivors.includes(sampler.lastSeen.get(id)?.node ?? "")),
        {
          what: "the sampler to see every moved session on a survivor",
        },
      );
    } finally {
      await sampler.stop();
    }
    assert.deepEqual(sampler.duplicates, []);
    assert.deepEqual(qrsSince(mark, moved), [], "a moved session asked for a QR");
    assert.deepEqual(sampler.scanning(moved), [], "a moved session was seen waiting for a scan");
    // Each moved account said its node was lost (connected → disconnected/node_lost), then came back.
    for (const id of moved) {
      const statuses = events
        .slice(mark)
        .filter((e) => e.event === "account.status" && e.payload.accountId === id)
        .map((e) => `${e.payload.previousStatus}→${e.payload.status}/${e.payload.reason ?? ""}`);
      assert.equal(statuses[0], "connected→disconnected/node_lost", `${id}: ${statuses.join(", ")}`);
      assert.equal(
        statuses.at(-1)?.split("/")[0].split("→")[1],
        "connected",
        `${id}: ${statuses.join(", ")}`,
      );
    }
    const perNode = new Map<string, number>();
    for (const id of moved) {
      const node = sampler.lastSeen.get(id)!.node;
      perNode.set(node, (perNode.get(node) ?? 0) + 1);
    }
    assert.equal(perNode.size, 3, `w1's sessions spread over the 3 survivors: ${[...perNode]}`);
    const times = [...sampler.firstConnectedElsewhere.values()]
      .map((t) => t - killedAt)
      .sort((a, b) => a - b);
    console.log(`      failover: ${times.length} sessions, max ${times.at(-1)} ms after SIGKILL`);
    for (const a of accounts) {
      const v = (await obs.call("accounts.get", {
        workspaceId: a.workspaceId,
        accountId: a.id,
      })) as AccountView;
      assert.equal(v.status, "connected");
      assert.notEqual(v.node, "w1");
    }
    // w1 comes back (empty: a join moves no live workspace).
    await pc.startWorker("w1");
    running = [...WORKERS];
    await workersSeen(WORKERS);
    assert.equal((await sessionsOf(obs, "w1")).length, 0);
  });

  it("drain hands every workspace to its next owner: the node ends with zero, none failed, none twice", async () => {
    const have = (await sessionsOf(obs, "w2")).length;
    if (have < 100) {
      all.push(
        ...(await connectedAccounts(
          obs,
          events,
          await workspacesOn(obs, "w2", Math.ceil((100 - have) / 4), "drain"),
          4,
        )),
      );
    }
    const onW2 = (await sessionsOf(obs, "w2")).map((s) => s.accountId);
    assert.ok(onW2.length >= 100, `w2 hosts ${onW2.length}`);
    const mark = events.length;
    const others = WORKERS.filter((n) => n !== "w2");
    const sampler = new Sampler(obs, () => WORKERS, "w2").start();
    let result: { moved: number; kept: number; sessions: number };
    try {
      result = (await obs.call("cluster.drain", { nodeId: "w2" }, { timeout: 60000 })) as typeof result;
      await waitAllConnected(obs, () => others, onW2, "w2's sessions connected elsewhere", 30000, "w2");
    } finally {
      await sampler.stop();
    }
    assert.equal(result.sessions, 0);
    assert.equal(result.kept, 0);
    assert.deepEqual(sampler.duplicates, []);
    const moved = new Set(onW2);
    const failed = events
      .slice(mark)
      .filter(
        (e) =>
          e.event === "account.status" && moved.has(e.payload.accountId) && e.payload.status === "failed",
      );
    assert.deepEqual(failed, []);
    assert.deepEqual(qrsSince(mark, moved), []);
    assert.deepEqual(sampler.scanning(moved), []);
    const nodes = (await obs.call("cluster.nodes", {})) as { items: (NodeRecord & { worker: boolean })[] };
    const w2 = nodes.items.find((n) => n.nodeId === "w2")!;
    await waitFor(
      async () => {
        const n = ((await obs.call("cluster.nodes", {})) as typeof nodes).items.find(
          (x) => x.nodeId === "w2",
        );
        return n?.draining === true && n.sessions === 0;
      },
      { what: "w2 to report draining with 0 sessions" },
    );
    assert.ok(w2.worker);
    // SIGTERM (a drain with nothing left) and back as a fresh, non-draining worker.
    assert.equal(await pc.stopWorker("w2"), 0);
    await pc.startWorker("w2");
    await workersSeen(WORKERS);
  });

  it("SIGSTOP: the frozen worker's sessions move only after its lease expired; after SIGCONT it does not resume them", async () => {
    let onW3 = await sessionsOf(obs, "w3");
    if (onW3.length < 10) {
      all.push(...(await connectedAccounts(obs, events, await workspacesOn(obs, "w3", 3, "stop"), 4)));
      onW3 = await sessionsOf(obs, "w3");
    }
    const moved = new Set(onW3.map((s) => s.accountId));
    const movedWs = new Set(onW3.map((s) => s.workspaceId));
    const mark = events.length;
    const placement = placementOf(obs)!;
    pc.kill("w3", "SIGSTOP");
    const lease = (await placement.nodesKv.get("w3"))!.json<NodeRecord>();
    const leaseExpiry = lease.renewedAt + pc.config("x").leaseTtlMs;
    const others = WORKERS.filter((n) => n !== "w3");
    const sampler = new Sampler(obs, () => others, "w3").start();
    try {
      await waitAllConnected(
        obs,
        () => others,
        [...moved],
        "w3's sessions connected on the others",
        30000,
        "w3",
      );
      for (const ws of movedWs) {
        const rec = placement.mirror.get(ws)!;
        assert.notEqual(rec.node, "w3");
        assert.ok(
          rec.since >= leaseExpiry,
          `${ws} claimed ${leaseExpiry - rec.since} ms before w3's lease expired`,
        );
      }
      pc.kill("w3", "SIGCONT");
      // Back: it renews its lease (a new term) and must not run what it lost.
      await waitFor(
        async () =>
          ((await placement.nodesKv.get("w3"))?.json<NodeRecord>().renewedAt ?? 0) > lease.renewedAt,
        {
          what: "w3 to renew again",
          timeoutMs: 15000,
        },
      );
      const watchUntil = Date.now() + 3000;
      await waitFor(
        async () => {
          const mine = await localOf(obs, "w3");
          assert.ok(!(mine ?? []).some((s) => moved.has(s.accountId)), "w3 resumed a session it had lost");
          return Date.now() > watchUntil;
        },
        { what: "3 s of w3 running none of its old sessions", timeoutMs: 10000, intervalMs: 50 },
      );
    } finally {
      pc.kill("w3", "SIGCONT");
      await sampler.stop();
    }
    assert.deepEqual(sampler.duplicates, []);
    assert.deepEqual(qrsSince(mark, moved), []);
    await workersSeen(WORKERS);
  });

  it("NATS restarting under the cluster: it recovers on its own, every session back once", async () => {
    await waitAllConnected(obs, () => running, ids(), "every session connected once before", 15000);
    const mark = events.length;
    const sampler = new Sampler(obs, () => running).start();
    try {
      await pc.stopNats();
      await pc.startNats();
      await waitAllConnected(
        obs,
        () => running,
        ids(),
        "every session connected once after the NATS restart",
        60000,
      );
    } finally {
      await sampler.stop();
    }
    assert.deepEqual(sampler.duplicates, []);
    assert.deepEqual(qrsSince(mark, new Set(ids())), []);
  });

  it("MongoDB restarting under the cluster: sessions keep running and new work succeeds afterwards", async () => {
    const sampler = new Sampler(obs, () => running).start();
    try {
      await pc.stopMongo();
      await pc.startMongo();
      await waitAllConnected(obs, () => running, ids(), "every session still connected once", 30000);
      // New work goes through (the drivers reconnected). A failed try is tried again; the last one's
      // error (with the statuses its account went through) is in the failure message.
      const fresh = await waitFor(() => connectedAccounts(obs, events, ["after-mongo"], 1), {
        what: "an account created after the restart to connect",
        timeoutMs: 30000,
        intervalMs: 500,
      });
      all.push(...fresh);
    } finally {
      await sampler.stop();
    }
    assert.deepEqual(sampler.duplicates, []);
  });

  it("SIGTERM on a worker with sessions drains them to the others before it exits", async () => {
    // The worker hosting the most sessions, wherever earlier tests left them.
    const hosted = await Promise.all(
      WORKERS.map(async (n) => ({ n, ids: ((await localOf(obs, n)) ?? []).map((s) => s.accountId) })),
    );
    const { n: victim, ids: onVictim } = hosted.sort((a, b) => b.ids.length - a.ids.length)[0];
    assert.ok(onVictim.length > 0, `${victim} hosts sessions`);
    const others = WORKERS.filter((n) => n !== victim);
    const mark = events.length;
    const sampler = new Sampler(obs, () => running, victim).start();
    try {
      // The sessions are all elsewhere by the time the process has exited (drain, then stop).
      assert.equal(await pc.stopWorker(victim), 0);
      running = others;
      await waitAllConnected(
        obs,
        () => others,
        onVictim,
        `${victim}'s sessions connected elsewhere`,
        30000,
        victim,
      );
    } finally {
      await sampler.stop();
      // Back whatever happened, so that a failure here leaves the next tests their four workers.
      await pc.startWorker(victim);
      running = [...WORKERS];
      await workersSeen(WORKERS);
    }
    assert.deepEqual(sampler.duplicates, []);
    assert.deepEqual(qrsSince(mark, new Set(onVictim)), []);
    // Handed off in order: none went through `failed`.
    const failed = events
      .slice(mark)
      .filter(
        (e) =>
          e.event === "account.status" &&
          onVictim.includes(e.payload.accountId) &&
          e.payload.status === "failed",
      );
    assert.deepEqual(failed, []);
  });

  it("whole-cluster restart (NATS and MongoDB kept): every session comes back by itself, restored", async () => {
    const before = ids();
    await waitAllConnected(obs, () => running, before, "every session connected once before", 15000);
    const mark = events.length;
    await Promise.all(WORKERS.map((n) => pc.stopWorker(n)));
    await Promise.all(WORKERS.map((n) => pc.startWorker(n)));
    await waitAllConnected(
      obs,
      () => WORKERS,
      before,
      `all ${before.length} sessions connected again`,
      60000,
    );
    assert.deepEqual(qrsSince(mark, new Set(before)), []);
  });

  it("whole-cluster crash (SIGKILL of every worker, back under new node ids): every session back once, no QR", async () => {
    const before = ids();
    await waitAllConnected(obs, () => running, before, "every session connected once before", 15000);
    const mark = events.length;
    for (const n of WORKERS) pc.kill(n, "SIGKILL");
    await Promise.all(WORKERS.map((n) => pc.stopWorker(n)));
    // Recreated containers get new names: no worker of the old ids comes back.
    const fresh = WORKERS.map((n) => `${n}-new`);
    running = fresh;
    const sampler = new Sampler(obs, () => fresh).start();
    try {
      await Promise.all(fresh.map((n) => pc.startWorker(n)));
      await waitAllConnected(
        obs,
        () => fresh,
        before,
        `all ${before.length} sessions restored on new nodes`,
        90000,
      );
    } finally {
      await sampler.stop();
      await Promise.all(fresh.map((n) => pc.stopWorker(n)));
    }
    assert.deepEqual(sampler.duplicates, []);
    assert.deepEqual(qrsSince(mark, new Set(before)), [], "a restored session asked for a QR");
  });
});
