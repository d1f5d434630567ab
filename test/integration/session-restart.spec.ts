// A restart clicked twice: two stop + start pairs of one account at once, on a real node (NATS,
// FerretDB), with an engine whose stop takes a while (as a browser's graceful close does). Two engines
// of one session must never run at once: webjs engines share the session's browser profile, and the
// old one's stop kills every process on it and removes it.
import { strict as assert } from "node:assert";
import type { ServiceBroker } from "moleculer";
import AccountsService from "../../services/accounts.service.ts";
import SessionService from "../../services/session.service.ts";
import type { AccountView } from "../../src/accounts/types.ts";
import type { Engine } from "../../src/engines/base.ts";
import { registerEngine } from "../../src/engines/index.ts";
import { createSimulatedEngine } from "../../src/engines/simulated.ts";
import { TestCluster } from "../support/cluster.ts";
import { waitFor } from "../support/wait.ts";

const STOP_MS = 300;

describe("sessions: a restart asked twice at once", function () {
  this.timeout(30000);
  let cluster: TestCluster;
  let api: ServiceBroker;
  let live = 0;
  let maxLive = 0;
  let starts = 0;

  before(async () => {
    registerEngine(
      "slowstop",
      (opts) => {
        const engine: Engine = createSimulatedEngine(opts);
        const start = engine.start.bind(engine);
        const stop = engine.stop.bind(engine);
        let running = false;
        engine.start = async () => {
          starts++;
          running = true;
          maxLive = Math.max(maxLive, ++live);
          await start();
        };
        engine.stop = async (o) => {
          await new Promise((r) => setTimeout(r, STOP_MS));
          await stop(o);
          if (running) live--;
          running = false;
        };
        return engine;
      },
      { simulate: true },
    );
    cluster = new TestCluster({ qr: { firstTtlMs: 60000, refreshMs: 20000, max: 5 } }, "restart2");
    api = cluster.node("n1", [AccountsService, SessionService]);
    await cluster.start();
    await api.waitForServices(["accounts", "session"], 10000);
  });
  after(async () => cluster?.stop());

  it("one engine at a time, and the account runs afterwards", async () => {
    const a: AccountView = await api.call("accounts.create", { workspaceId: "wr2", engine: "slowstop" });
    const local = async () =>
      (
        (await api.call("session.local", {}, { nodeID: "n1" })) as { accountId: string; status: string }[]
      ).find((s) => s.accountId === a.id);
    await waitFor(async () => (await local())?.status === "qr_scanning", { what: "the first QR" });
    const params = { workspaceId: "wr2", accountId: a.id };
    await Promise.all([api.call("accounts.restart", params), api.call("accounts.restart", params)]);
    await waitFor(async () => (await local())?.status === "qr_scanning", { what: "a QR after the restarts" });
    assert.equal(maxLive, 1, "two engines of the account ran at once");
    assert.ok(starts >= 2, `started again (${starts} starts)`);
    assert.equal(live, 1);
  });
});
