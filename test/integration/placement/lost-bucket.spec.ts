// The placement bucket lost while the database kept everything (JetStream storage gone, the bucket
// deleted): the accounts still name their last owner and epoch. Nodes started on the empty bucket must
// place their workspaces by themselves and bring the linked accounts back from their saved auth state
// (no QR) — which works only if the new owner's epoch is above the one the records hold.
import { strict as assert } from "node:assert";
import { connect } from "nats";
import type { ServiceSchema } from "moleculer";
import AccountsService from "../../../services/accounts.service.ts";
import SessionService from "../../../services/session.service.ts";
import type { AccountView } from "../../../src/accounts/types.ts";
import { bucketName } from "../../../src/config.ts";
import { workerNodeOf } from "../../../src/placement/worker-node.ts";
import { TestCluster } from "../../support/cluster.ts";
import { testEnv } from "../../support/env.ts";
import { waitFor } from "../../support/wait.ts";

/** Records account.status and account.qr events, in arrival order. */
function recorder(into: { event: string; payload: any }[]): ServiceSchema {
  const on = (event: string) => (ctx: any) => void into.push({ event, payload: ctx.params });
  return {
    name: "recorder",
    events: { "account.status": on("account.status"), "account.qr": on("account.qr") },
  };
}

describe("placement: the placement bucket lost, the database kept", function () {
  this.timeout(60000);
  const clusters: TestCluster[] = [];
  after(async () => Promise.all(clusters.map((c) => c.stop())));

  it("nodes on the empty bucket place the workspaces and restore linked accounts without a QR", async () => {
    const events: { event: string; payload: any }[] = [];
    const first = new TestCluster({ qr: { firstTtlMs: 20000, refreshMs: 20000, max: 3 } }, "lostkv");
    clusters.push(first);
    const n1 = first.node("n1", [AccountsService, SessionService, recorder(events)]);
    await first.start();
    await n1.waitForServices(["accounts", "session"], 10000);
    const linked: AccountView[] = [];
    for (const ws of ["wl_a", "wl_b", "wl_c"]) {
      const a: AccountView = await n1.call("accounts.create", { workspaceId: ws });
      await waitFor(() => events.some((e) => e.event === "account.qr" && e.payload.accountId === a.id), {
        what: `${a.id} scanning`,
      });
      await n1.call("accounts.simulate", { workspaceId: ws, accountId: a.id, action: "scan" });
      linked.push(a);
    }
    const isConnected = (id: string, from = 0) =>
      events
        .slice(from)
        .some(
          (e) =>
            e.event === "account.status" && e.payload.accountId === id && e.payload.status === "connected",
        );
    await waitFor(() => linked.every((a) => isConnected(a.id)), { what: "all linked" });
    const before = (await n1.call("cluster.placement", { workspaceId: "wl_a" })) as { epoch: number };
    await first.stop();

    // The bucket gone with NATS's storage; the database untouched.
    const nc = await connect({ servers: testEnv.natsUrl });
    try {
      const jsm = await nc.jetstreamManager();
      const stream = `KV_${bucketName(first.config("n1"), "placement")}`;
      assert.equal(await jsm.streams.delete(stream), true, `deleted ${stream}`);
    } finally {
      await nc.close();
    }

    const mark = events.length;
    const second = new TestCluster(
      {
        namespace: first.namespace,
        mongoUrl: first.mongoUrl,
        qr: { firstTtlMs: 20000, refreshMs: 20000, max: 3 },
      },
      "lostkv",
    );
    clusters.push(second);
    const n2 = second.node("n2", [AccountsService, SessionService, recorder(events)]);
    await second.start();
    await waitFor(() => linked.every((a) => isConnected(a.id, mark)), {
      what: "every linked account back, on the empty bucket",
      timeoutMs: 30000,
    });
    const qrs = events.slice(mark).filter((e) => e.event === "account.qr");
    assert.deepEqual(qrs, [], "restored from the saved auth state: no QR");
    for (const a of linked) {
      const view: AccountView = await n2.call("accounts.get", {
        workspaceId: a.workspaceId,
        accountId: a.id,
      });
      assert.deepEqual([view.status, view.node], ["connected", "n2"]);
    }
    const after = (await n2.call("cluster.placement", { workspaceId: "wl_a" })) as { epoch: number };
    assert.ok(after.epoch > before.epoch, `epoch ${after.epoch} above the lost ${before.epoch}`);
  });
});

describe("placement: JetStream loses the buckets under running nodes", function () {
  this.timeout(90000);
  let cluster: TestCluster | undefined;
  after(async () => cluster?.stop());

  for (const lost of [["placement", "nodes"], ["placement"]]) {
    it(`they create ${lost.join(" and ")} again, lease again and bring the linked accounts back without a QR`, async () => {
      await cluster?.stop();
      const events: { event: string; payload: any }[] = [];
      const c = new TestCluster({ qr: { firstTtlMs: 20000, refreshMs: 20000, max: 3 } }, "lostrun");
      cluster = c;
      const n1 = c.node("n1", [AccountsService, SessionService, recorder(events)]);
      c.node("n2", [SessionService]);
      await c.start();
      await n1.waitForServices(["accounts", "session"], 10000);
      const linked: AccountView[] = [];
      for (const ws of ["wr_a", "wr_b", "wr_c", "wr_d"]) {
        const a: AccountView = await n1.call("accounts.create", { workspaceId: ws });
        await waitFor(() => events.some((e) => e.event === "account.qr" && e.payload.accountId === a.id), {
          what: `${a.id} scanning`,
        });
        await n1.call("accounts.simulate", { workspaceId: ws, accountId: a.id, action: "scan" });
        linked.push(a);
      }
      const connectedSince = (id: string, from: number) =>
        events
          .slice(from)
          .some(
            (e) =>
              e.event === "account.status" && e.payload.accountId === id && e.payload.status === "connected",
          );
      await waitFor(() => linked.every((a) => connectedSince(a.id, 0)), { what: "all linked" });
      const terms = c.brokers.map((b) => workerNodeOf(b)!.ownership.liveness.term);

      const mark = events.length;
      const nc = await connect({ servers: testEnv.natsUrl });
      try {
        const jsm = await nc.jetstreamManager();
        for (const bucket of lost) {
          const stream = `KV_${bucketName(c.config("n1"), bucket)}`;
          assert.equal(await jsm.streams.delete(stream), true, `deleted ${stream}`);
        }
      } finally {
        await nc.close();
      }
      await waitFor(
        () =>
          linked.every((a) => connectedSince(a.id, mark)) &&
          c.brokers.every((b) => workerNodeOf(b)!.ownership.liveness.isCurrent()),
        { what: "every linked account connected again, every node leased", timeoutMs: 45000 },
      );
      const qrs = events.slice(mark).filter((e) => e.event === "account.qr");
      assert.deepEqual(qrs, [], "restored from the saved auth state: no QR");
      for (const a of linked) {
        const rec = (await n1.call("cluster.placement", { workspaceId: a.workspaceId })) as { node: string };
        const view: AccountView = await n1.call("accounts.get", {
          workspaceId: a.workspaceId,
          accountId: a.id,
        });
        assert.deepEqual(
          [view.status, view.node],
          ["connected", rec.node],
          `${a.id} runs on its recorded owner`,
        );
      }
      if (lost.includes("nodes"))
        assert.ok(
          c.brokers.every((b, i) => workerNodeOf(b)!.ownership.liveness.term > terms[i]),
          "every lease was lost with the bucket: new terms",
        );
    });
  }
});

describe("placement: claiming a workspace the table does not name but its accounts do", function () {
  this.timeout(60000);
  let cluster: TestCluster | undefined;
  after(async () => cluster?.stop());

  it("never while a node its accounts name holds a lease; otherwise above the epochs they carry", async () => {
    cluster = new TestCluster({}, "unnamed");
    const n1 = cluster.node("n1", [SessionService]);
    const n2 = cluster.node("n2", [SessionService]);
    await cluster.start();
    const ownership = workerNodeOf(n2)!.ownership;
    await waitFor(() => ownership.liveness.isCurrent(), { what: "n2's lease" });
    assert.ok(workerNodeOf(n1)!.ownership.liveness.isCurrent());
    // Its accounts last ran on n1, which still runs: the table lost the record, n1 did not lose them.
    assert.equal(await ownership.claim("wu_live", null, false, { lastOwners: ["n1"], above: 3 }), null);
    assert.equal(ownership.current("wu_live"), null);
    // On a node gone (no lease): claimed, above an epoch its accounts carry from a clock ahead of ours.
    const ahead = Date.now() + 3_600_000;
    const claimed = await ownership.claim("wu_gone", null, false, { lastOwners: ["gone"], above: ahead });
    assert.equal(claimed?.node, "n2");
    assert.equal(claimed?.epoch, ahead + 1);
  });
});
