// A gateway that stops closes its Socket.IO connections without telling the clients they were let go:
// socket.io-client then reconnects by itself ("transport close"), here to the same gateway once it is
// back on its port. A server-side disconnect ("io server disconnect") would leave the client idle for good.
// A client is let in only once the workers know the restarted gateway listens to their events (the
// broadcast of an event goes only to the nodes its sender knows listen to it).
import { strict as assert } from "node:assert";
import type { ServiceBroker } from "moleculer";
import AccountsService from "../../../services/accounts.service.ts";
import { createApiService } from "../../../services/api.service.ts";
import IoService from "../../../services/io.service.ts";
import SessionService from "../../../services/session.service.ts";
import { TestCluster, type ConfigOverrides } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";
import { RecordingSocket, Rest, gatewayPort } from "./support.ts";

const ADMIN = "io-restart-admin-key-of-32-chars!!";

describe("io: a gateway stop and restart", function () {
  this.timeout(60000);
  let cluster: TestCluster;
  const sockets: RecordingSocket[] = [];

  const gateway = (port: number): ServiceBroker => {
    const overrides: ConfigOverrides = { services: ["api", "io", "accounts"], port };
    return cluster.node(
      "gw",
      [createApiService(cluster.config("gw", overrides)), IoService, AccountsService],
      overrides,
    );
  };

  before(async () => {
    cluster = new TestCluster({ adminApiKey: ADMIN }, "iorestart");
    gateway(0);
    cluster.node("w1", [SessionService], { services: ["session"] });
    await cluster.start();
  });

  after(async () => {
    for (const s of sockets) s.close();
    await cluster?.stop();
  });

  it("a client sees a transport close, not a server disconnect, and is live again once the gateway is back", async () => {
    const gw = cluster.brokers[0];
    const port = gatewayPort(gw);
    const url = `http://127.0.0.1:${port}`;
    const { key } = await new Rest(url).ok("POST", "/api/v1/workspaces/back/keys", ADMIN, {});
    const s = new RecordingSocket(url, { token: key }, "back", {
      reconnection: true,
      reconnectionDelay: 100,
      reconnectionDelayMax: 500,
    });
    sockets.push(s);
    await s.ready();
    let snapshots = 0;
    s.socket.on("accounts.snapshot", () => snapshots++);
    const gone = new Promise<string>((resolve) => s.socket.once("disconnect", resolve));

    const stopping = Date.now();
    await gw.stop();
    const stopMs = Date.now() - stopping;
    assert.equal(await gone, "transport close");
    assert.equal(s.socket.active, true, "socket.io-client keeps reconnecting by itself");
    assert.ok(stopMs < 5000, `the gateway stopped in ${stopMs} ms with a socket open`);

    // A new gateway node on the same port (the stopped broker leaves the cluster's list).
    cluster.brokers.splice(cluster.brokers.indexOf(gw), 1);
    // Started alone (cluster.start would also wait until every node sees every other's services): a
    // socket let in at once hears the workers' events at once, as they know the restarted gateway
    // relays them (a broadcast goes only to the nodes its sender knows listen).
    await gateway(port).start();
    const fresh = new RecordingSocket(url, { token: key }, "back");
    sockets.push(fresh);
    await fresh.ready();
    const account = await new Rest(url).ok("POST", "/api/v1/accounts", key, { name: "right after" });
    const qrOf = (r: RecordingSocket) =>
      r.received.some((e) => e.event === "account.qr" && e.payload.accountId === account.id);
    await waitFor(() => qrOf(fresh), {
      what: "the new account's QR, broadcast by the worker",
      timeoutMs: 5000,
    });
    await waitFor(() => s.socket.connected && snapshots === 1, {
      what: "the client reconnected to the restarted gateway and got a fresh snapshot",
      timeoutMs: 15000,
    });
  });

  it("a socket that comes before the gateway's accounts service answers is refused SERVICE_UNAVAILABLE, then let in", async () => {
    const split = new TestCluster({ adminApiKey: ADMIN }, "iosplit");
    try {
      // The gateway's `accounts` runs on a node of its own, started later.
      const overrides: ConfigOverrides = { services: ["api", "io"], port: 0 };
      const gw = split.node("gw", [createApiService(split.config("gw", overrides)), IoService], overrides);
      split.node("w1", [SessionService], { services: ["session"] });
      await split.start();
      const url = `http://127.0.0.1:${gatewayPort(gw)}`;
      const { key } = await new Rest(url).ok("POST", "/api/v1/workspaces/early/keys", ADMIN, {});
      const early = new RecordingSocket(url, { token: key }, "early");
      sockets.push(early);
      const refusal = await early.refused();
      assert.equal(refusal.data?.type, "SERVICE_UNAVAILABLE", JSON.stringify(refusal.data));

      split.node("acc", [AccountsService], { services: ["accounts"] });
      await split.start();
      const later = new RecordingSocket(url, { token: key }, "early");
      sockets.push(later);
      await later.ready();
      assert.deepEqual(later.snapshot?.items, []);
    } finally {
      await split.stop();
    }
  });
});
