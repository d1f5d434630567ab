// A worker that stops (SIGTERM) and has nowhere to hand its workspaces (the only worker) stops its
// sessions gracefully while its lease still holds: each engine closes cleanly and saves its state
// (a forced kill skips the final save, so the next start restores an older profile), and no other node
// may claim the workspaces while their sessions still run. Real NATS and FerretDB; an engine that
// records how it was stopped and whether the node's lease key was still there.
import { strict as assert } from "node:assert";
import type { ServiceBroker } from "moleculer";
import AccountsService from "../../services/accounts.service.ts";
import SessionService from "../../services/session.service.ts";
import type { AccountView } from "../../src/accounts/types.ts";
import type { Engine } from "../../src/engines/base.ts";
import { registerEngine } from "../../src/engines/index.ts";
import { createSimulatedEngine } from "../../src/engines/simulated.ts";
import { ClusterPlacement } from "../../src/placement/kv.ts";
import { TestCluster, testConfig } from "../support/cluster.ts";
import { waitFor } from "../support/wait.ts";

describe("sessions: a worker stopping with nowhere to hand its workspaces", function () {
  this.timeout(30000);
  let cluster: TestCluster;
  let observer: ClusterPlacement;
  const stops: { force: boolean; leaseKey: boolean }[] = [];

  before(async () => {
    registerEngine(
      "stop-observed",
      (opts) => {
        const engine: Engine = createSimulatedEngine(opts);
        const stop = engine.stop.bind(engine);
        engine.stop = async (o) => {
          const entry = await observer.nodesKv.get("n1");
          stops.push({ force: Boolean(o?.force), leaseKey: entry?.operation === "PUT" });
          await stop(o);
        };
        return engine;
      },
      { simulate: true },
    );
    cluster = new TestCluster({ qr: { firstTtlMs: 60000, refreshMs: 20000, max: 5 } }, "shutdown");
    observer = await ClusterPlacement.connect(testConfig({ namespace: cluster.namespace, nodeId: "obs" }));
  });
  after(async () => {
    await observer?.close();
    await cluster?.stop();
  });

  it("stops each session gracefully, its lease still held", async () => {
    const api: ServiceBroker = cluster.node("n1", [AccountsService, SessionService]);
    await cluster.start();
    await api.waitForServices(["accounts", "session"], 10000);
    const a: AccountView = await api.call("accounts.create", { workspaceId: "wsd", engine: "stop-observed" });
    await waitFor(
      async () =>
        ((await api.call("accounts.get", { workspaceId: "wsd", accountId: a.id })) as AccountView).status ===
        "qr_scanning",
      {
        what: "the account running",
      },
    );
    await api.stop();
    assert.deepEqual(stops, [{ force: false, leaseKey: true }]);
  });
});
