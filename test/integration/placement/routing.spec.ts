// Placement over the real NATS (JetStream KV) and FerretDB, with 4 workers and 2 non-worker callers
// (a gateway-like broker running `accounts`, and a bare REPL-like broker):
// - every session.* call for a workspace, from any caller, reaches the recorded owner (1,000 workspaces);
// - a worker that drains forwards a new workspace rather than claim it, and passes on a record naming
//   it that it does not hold;
// - all 6 brokers racing to claim one workspace: exactly one winner, 200 times in a row;
// - a worker whose lease renewals are paused stops its sessions before anyone else starts them.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import type { ServiceBroker } from "moleculer";
import AccountsService from "../../../services/accounts.service.ts";
import SessionService from "../../../services/session.service.ts";
import type { PingResult } from "../../../services/session.service.ts";
import type { AccountView } from "../../../src/accounts/types.ts";
import { openBucket, placementOf } from "../../../src/placement/kv.ts";
import { PlacementTable } from "../../../src/placement/placement-table.ts";
import { workerNodeOf } from "../../../src/placement/worker-node.ts";
import type { WorkerOwnership } from "../../../src/placement/worker-ownership.ts";
import { TestCluster } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";

const WORKERS = ["w1", "w2", "w3", "w4"];

function ownershipOf(broker: ServiceBroker): WorkerOwnership {
  const node = workerNodeOf(broker);
  assert.ok(node, `${broker.nodeID} runs no placement`);
  return node.ownership;
}

async function inParallel<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: limit }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item);
    }),
  );
}

describe("placement: routing, claims and fencing over the real NATS", function () {
  this.timeout(60000);
  let cluster: TestCluster;
  let brokers: ServiceBroker[];
  let gateway: ServiceBroker;

  before(async () => {
    cluster = new TestCluster({ qr: { firstTtlMs: 60000, refreshMs: 20000 } }, "place");
    for (const id of WORKERS) cluster.node(id, [SessionService]);
    gateway = cluster.node("gw", [AccountsService]);
    cluster.node("repl", []);
    await cluster.start();
    brokers = cluster.brokers;
    await waitFor(
      () =>
        brokers.every(
          (b) =>
            placementOf(b)!.mirror.liveNodes().size === WORKERS.length &&
            b.registry.getActionEndpoints("session.ping")?.endpoints.length === WORKERS.length,
        ),
      { what: "every broker to see 4 leased workers", timeoutMs: 15000 },
    );
  });

  after(async () => cluster?.stop());

  it("routes every session.* call for a workspace, from any caller, to its recorded owner (1,000 workspaces)", async () => {
    const workspaces = Array.from({ length: 1000 }, (_, i) => `route-${i}`);
    // First calls place the workspaces (the caller's strategy picks a worker, which claims it).
    await inParallel(workspaces, 50, async (ws) => {
      const caller = brokers[Math.floor(Math.random() * brokers.length)];
      await caller.call("session.ping", { workspaceId: ws });
    });
    await waitFor(() => brokers.every((b) => placementOf(b)!.mirror.size >= 1000), {
      what: "every mirror to hold 1,000 records",
    });
    const owners = new Map<string, string>();
    for (const rec of await placementOf(gateway)!.table.list()) owners.set(rec.workspaceId, rec.node);
    const perNode = new Map<string, number>();
    for (const ws of workspaces) perNode.set(owners.get(ws)!, (perNode.get(owners.get(ws)!) ?? 0) + 1);
    assert.deepEqual([...perNode.keys()].sort(), WORKERS, "every worker owns workspaces");
    for (const n of perNode.values()) assert.ok(n <= 1.25 * 250 + 1, `unbalanced: ${[...perNode.values()]}`);

    let calls = 0;
    const wrong: string[] = [];
    await inParallel(
      workspaces.flatMap((ws) => brokers.map((b) => ({ ws, b }))),
      100,
      async ({ ws, b }) => {
        const res = (await b.call("session.ping", { workspaceId: ws })) as PingResult;
        calls++;
        // Reached the owner directly: the strategy picked it, nobody had to forward.
        if (res.node !== owners.get(ws) || res.forwardedBy !== null) {
          wrong.push(`${b.nodeID}→${ws}: ran on ${res.node} via ${res.forwardedBy}, owner ${owners.get(ws)}`);
        }
      },
    );
    assert.equal(calls, 6000);
    assert.deepEqual(wrong.slice(0, 5), []);
    // A call without its shard key is refused, never sent to a random node.
    await assert.rejects(
      async () => gateway.call("session.ping", {}),
      (err: any) => err.type === "VALIDATION_ERROR",
    );
  });

  it("a draining worker its callers do not know about yet forwards a new workspace instead of claiming it", async () => {
    const w1 = brokers.find((b) => b.nodeID === "w1")!;
    const wp = ownershipOf(w1);
    // Draining in its own eyes only: its lease record (what callers' strategies read) still says not.
    wp.draining = true;
    try {
      for (let i = 0; i < 5; i++) {
        const ws = `drain-race-${randomBytes(3).toString("hex")}`;
        const res = (await gateway.call("session.ping", { workspaceId: ws }, { nodeID: "w1" })) as PingResult;
        assert.notEqual(res.node, "w1");
        assert.equal(res.forwardedBy, "w1");
        assert.equal((await placementOf(gateway)!.table.get(ws))?.node, res.node);
      }
    } finally {
      wp.draining = false;
    }
  });

  it("a draining worker passes a record naming it that it does not hold to its next owner, which adopts it", async () => {
    const w1 = brokers.find((b) => b.nodeID === "w1")!;
    const wp = ownershipOf(w1);
    const table = placementOf(gateway)!.table;
    const ws = `drain-stray-${randomBytes(3).toString("hex")}`;
    wp.draining = true;
    try {
      // Recorded for w1 without w1's claim (what a failed hand-off or a lapsed term leaves): w1 holds
      // nothing of it, and a draining node adopts nothing.
      const stray = await table.claim(ws, "w1", null);
      assert.ok(stray);
      const rec = await waitFor(
        async () => {
          const r = await table.get(ws);
          return r && r.node !== "w1" ? r : null;
        },
        { what: `w1's reconciler to pass ${ws} on` },
      );
      assert.ok(WORKERS.includes(rec.node));
      const owner = ownershipOf(brokers.find((b) => b.nodeID === rec.node)!);
      await waitFor(() => owner.current(ws), { what: `${rec.node} to adopt ${ws}` });
      assert.ok((await table.get(ws))!.epoch > stray.epoch + 1, "passed on (epoch + 1), then adopted (+ 1)");
      assert.equal(wp.current(ws), null, "never held by w1");
    } finally {
      wp.draining = false;
    }
  });

  it("decides a race of all 6 brokers for one workspace with exactly one winner, 200 times", async () => {
    // Each broker through its own NATS connection, on a bucket of its own (the live placement bucket
    // has reconcilers that would rightly claim records left by non-workers). They open it at once, as
    // nodes starting together do, so the loser of its creation goes through openBucket's retry.
    const bucket = `race_${randomBytes(4).toString("hex")}`;
    const tables = await Promise.all(
      brokers.map(
        async (b) =>
          new PlacementTable(
            await openBucket(() => placementOf(b)!.nc.jetstream().views.kv(bucket, { history: 1 })),
          ),
      ),
    );
    for (let round = 0; round < 200; round++) {
      const ws = `race-${round}`;
      const results = await Promise.all(tables.map((t, i) => t.claim(ws, brokers[i].nodeID, null)));
      const winners = results.filter((r) => r !== null);
      assert.equal(winners.length, 1, `round ${round}: ${winners.length} winners`);
      // And a race to take it over from the same record: again exactly one.
      const seen = winners[0]!;
      const again = await Promise.all(tables.map((t, i) => t.claim(ws, brokers[i].nodeID, seen)));
      const second = again.filter((r) => r !== null);
      assert.equal(second.length, 1, `round ${round} (takeover): ${second.length} winners`);
      assert.equal(second[0]!.epoch, seen.epoch + 1);
    }
  });

  it("a join moves no workspace; rebalance then moves a bounded batch, each to a less loaded node", async () => {
    const table = placementOf(gateway)!.table;
    const before = new Map((await table.list()).map((r) => [r.workspaceId, `${r.node}:${r.epoch}`]));
    const w5 = cluster.node("w5", [SessionService], { qr: { firstTtlMs: 60000, refreshMs: 20000 } });
    await cluster.start();
    await waitFor(() => brokers.every((b) => placementOf(b)!.mirror.liveNodes().size === 5), {
      what: "every broker to see w5's lease",
    });
    const after = new Map((await table.list()).map((r) => [r.workspaceId, `${r.node}:${r.epoch}`]));
    assert.deepEqual(after, before, "a join moved a workspace");
    const res = (await gateway.call("cluster.rebalance", { max: 10 })) as {
      moved: { workspaceId: string; from: string; to: string }[];
      failed: { workspaceId: string; reason: string }[];
    };
    assert.deepEqual(res.failed, [], "every planned move was made");
    assert.equal(res.moved.length, 10);
    const load = new Map<string, number>();
    for (const v of before.values()) load.set(v.split(":")[0], (load.get(v.split(":")[0]) ?? 0) + 1);
    for (const m of res.moved) {
      // Each move takes a workspace to its bounded-load HRW choice, a less loaded node than its own.
      assert.ok((load.get(m.to) ?? 0) + 1 < (load.get(m.from) ?? 0), `${m.workspaceId}: ${m.from} → ${m.to}`);
      load.set(m.to, (load.get(m.to) ?? 0) + 1);
      load.set(m.from, (load.get(m.from) ?? 0) - 1);
      assert.equal((await table.get(m.workspaceId))!.node, m.to);
      // Calls follow at once: the new owner answers.
      const ping = (await gateway.call("session.ping", { workspaceId: m.workspaceId })) as PingResult;
      assert.equal(ping.node, m.to);
    }
    assert.ok(
      res.moved.some((m) => m.to === "w5"),
      "the joiner takes workspaces",
    );
    assert.ok(placementOf(w5)!.mirror.size > 0);
  });

  it("a worker whose renewals pause stops its sessions before any other node starts them", async () => {
    // 24 connected accounts over 24 workspaces; some land on w1.
    const accounts: AccountView[] = [];
    await inParallel(
      Array.from({ length: 24 }, (_, i) => `fence-${i}`),
      8,
      async (ws) => {
        const acc = (await gateway.call("accounts.create", {
          workspaceId: ws,
          engine: "simulated",
        })) as AccountView;
        await waitFor(
          async () =>
            ((await gateway.call("accounts.get", { workspaceId: ws, accountId: acc.id })) as AccountView)
              .status === "qr_scanning",
          { what: `${acc.id} to show a QR` },
        );
        await gateway.call("accounts.simulate", { workspaceId: ws, accountId: acc.id, action: "scan" });
        accounts.push(acc);
      },
    );
    const w1 = brokers.find((b) => b.nodeID === "w1")!;
    const survivors = brokers.filter((b) => b.getLocalService("session") && b !== w1);
    const local = async (b: ServiceBroker) =>
      (await b.call("session.local", {}, { nodeID: b.nodeID })) as { accountId: string; status: string }[];
    const onW1 = await waitFor(
      async () => {
        const l = await local(w1);
        return l.length > 0 && l.every((s) => s.status === "connected") ? l : null;
      },
      { what: "w1 to run connected sessions" },
    );
    const moved = new Set(onW1.map((s) => s.accountId));

    // Watch every node continuously: when did w1 run none, when did a survivor first run one?
    let w1EmptyAt = 0;
    let firstElsewhereAt = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const [mine, ...others] = await Promise.all([w1, ...survivors].map(local));
        const now = Date.now();
        if (!w1EmptyAt && mine.length === 0) w1EmptyAt = now;
        if (!firstElsewhereAt && others.flat().some((s) => moved.has(s.accountId))) firstElsewhereAt = now;
        const everywhere = [mine, ...others].flat().filter((s) => moved.has(s.accountId));
        assert.equal(
          new Set(everywhere.map((s) => s.accountId)).size,
          everywhere.length,
          "a session ran twice",
        );
        await new Promise((r) => setTimeout(r, 10));
      }
    })();

    const pausedAt = Date.now();
    ownershipOf(w1).liveness.pause();
    try {
      await waitFor(
        async () => {
          const all = (await Promise.all(survivors.map(local))).flat();
          const connected = all.filter((s) => moved.has(s.accountId) && s.status === "connected");
          return connected.length === moved.size;
        },
        { what: "the survivors to run w1's sessions, connected", timeoutMs: 20000 },
      );
    } finally {
      sampling = false;
      await sampler;
    }
    assert.ok(w1EmptyAt > 0 && firstElsewhereAt > 0);
    assert.ok(
      w1EmptyAt < firstElsewhereAt,
      `w1 emptied at +${w1EmptyAt - pausedAt} ms, others started at +${firstElsewhereAt - pausedAt} ms`,
    );
    // No QR was needed: they came back restored from the AuthStore. A session's status is written
    // after the session itself shows it (its event is logged first), so the record is waited for.
    for (const acc of accounts.filter((a) => moved.has(a.id))) {
      let view: AccountView | undefined;
      await waitFor(
        async () => {
          view = (await gateway.call("accounts.get", {
            workspaceId: acc.workspaceId,
            accountId: acc.id,
          })) as AccountView;
          return view.status === "connected";
        },
        { what: `${acc.id} recorded connected on a survivor`, timeoutMs: 10000 },
      );
      assert.notEqual(view!.node, "w1");
    }
    assert.equal((await local(w1)).length, 0);
  });
});
