// Every worker's lease lapses at once (NATS away longer than the lease TTL, or every node frozen), and
// they lease again one after another: the first one back must not take the workspaces of the others,
// which come back a second later. Real NATS (JetStream KV) and FerretDB, 3 in-process workers whose
// lease renewals are paused and resumed.
import { strict as assert } from "node:assert";
import type { ServiceBroker } from "moleculer";
import SessionService from "../../../services/session.service.ts";
import type { PingResult } from "../../../services/session.service.ts";
import { placementOf } from "../../../src/placement/kv.ts";
import { workerNodeOf } from "../../../src/placement/worker-node.ts";
import type { WorkerOwnership } from "../../../src/placement/worker-ownership.ts";
import { TestCluster } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";

const WORKERS = ["w1", "w2", "w3"];

function ownershipOf(broker: ServiceBroker): WorkerOwnership {
  const node = workerNodeOf(broker);
  assert.ok(node, `${broker.nodeID} runs no placement`);
  return node.ownership;
}

describe("placement: every lease lapsed, the workers lease again one by one", function () {
  this.timeout(60000);
  let cluster: TestCluster;

  afterEach(async () => {
    for (const b of cluster?.brokers ?? []) if (workerNodeOf(b)) ownershipOf(b).liveness.resume();
    await cluster?.stop();
  });

  it("the first worker back takes none of the others' workspaces", async () => {
    cluster = new TestCluster({ qr: { firstTtlMs: 60000, refreshMs: 20000 } }, "outage");
    const workers = WORKERS.map((id) => cluster.node(id, [SessionService]));
    const obs = cluster.node("obs", []);
    await cluster.start();
    const mirror = placementOf(obs)!.mirror;
    await waitFor(() => mirror.liveNodes().size === WORKERS.length, { what: "3 leased workers" });
    const workspaces = Array.from({ length: 30 }, (_, i) => `outage-${i}`);
    const owners = new Map<string, string>();
    for (const ws of workspaces)
      owners.set(ws, ((await obs.call("session.ping", { workspaceId: ws })) as PingResult).node);
    assert.equal(new Set(owners.values()).size, WORKERS.length, "every worker owns some");

    for (const w of workers) ownershipOf(w).liveness.pause();
    await waitFor(
      () => mirror.liveNodes().size === 0 && workers.every((w) => !ownershipOf(w).liveness.isCurrent()),
      {
        what: "every lease gone on the server and every worker fenced",
        timeoutMs: 15000,
      },
    );
    const [first, ...rest] = workers;
    ownershipOf(first).liveness.resume();
    await waitFor(() => mirror.isLive("w1") && ownershipOf(first).liveness.isCurrent(), {
      what: "w1 leased again",
    });
    // The others are a second later (their NATS connection back later, or their renewal timer).
    await new Promise((resolve) => setTimeout(resolve, 1000));
    for (const w of rest) ownershipOf(w).liveness.resume();
    await waitFor(() => mirror.liveNodes().size === WORKERS.length, { what: "every worker leased again" });
    await waitFor(
      () =>
        workspaces.every((ws) => {
          const node = mirror.get(ws)?.node;
          const holder = workers.find((w) => w.nodeID === node);
          return holder !== undefined && ownershipOf(holder).current(ws) !== null;
        }),
      { what: "every workspace held again", timeoutMs: 15000 },
    );
    const moved = workspaces.filter((ws) => mirror.get(ws)?.node !== owners.get(ws));
    assert.deepEqual(
      moved.map((ws) => `${ws}: ${owners.get(ws)} → ${mirror.get(ws)?.node}`),
      [],
      "no workspace changed hands",
    );
  });
});
