// A gateway cut off from NATS for a moment: events broadcast meanwhile never reach it (plain NATS keeps
// nothing for a connection that is away), while its Socket.IO clients stay connected to it. Its sockets
// must not step over those events: they are closed when the bus drops, and come back (refused until
// the bus is back) resuming from their cursor. The gateway reaches NATS through a TCP proxy that the
// spec cuts; the worker, which keeps logging and broadcasting, reaches it directly.
import { strict as assert } from "node:assert";
import type { ServiceBroker } from "moleculer";
import AccountsService from "../../../services/accounts.service.ts";
import { createApiService } from "../../../services/api.service.ts";
import IoService from "../../../services/io.service.ts";
import SessionService from "../../../services/session.service.ts";
import type { AccountView } from "../../../src/accounts/types.ts";
import { TestCluster, type ConfigOverrides } from "../../support/cluster.ts";
import { testEnv } from "../../support/env.ts";
import { TcpProxy } from "../../support/tcp-proxy.ts";
import { waitFor } from "../../support/wait.ts";
import { connectedAccount, LONG_QR } from "../events/support.ts";
import { RecordingSocket, gatewayPort } from "./support.ts";

const ADMIN = "io-bus-gap-admin-key-of-32-chars!!";

describe("io: a gateway cut off from NATS for a moment", function () {
  this.timeout(60000);
  let cluster: TestCluster;
  let proxy: TcpProxy;
  let socket: RecordingSocket | undefined;

  before(async () => {
    proxy = await TcpProxy.forUrl(testEnv.natsUrl).start();
  });
  after(async () => {
    await proxy?.stop();
  });
  afterEach(async () => {
    socket?.close();
    proxy.restore();
    await cluster?.stop();
  });

  it("its sockets get every event broadcast meanwhile, once and in order, after they come back", async () => {
    cluster = new TestCluster({ adminApiKey: ADMIN, qr: LONG_QR }, "iogap");
    const overrides: ConfigOverrides = { services: ["api", "io", "accounts"], port: 0, natsUrl: proxy.url };
    const gw = cluster.node(
      "gw",
      [createApiService(cluster.config("gw", overrides)), IoService, AccountsService],
      overrides,
    );
    // The worker also runs `accounts`: the spec drives it while the gateway is away.
    const w1: ServiceBroker = cluster.node("w1", [SessionService, AccountsService], {
      services: ["session", "accounts"],
    });
    await cluster.start();
    const url = `http://127.0.0.1:${gatewayPort(gw)}`;
    const { key } = (await gw.call("api.createKey", { workspaceId: "gap" })) as { key: string };
    const account: AccountView = await connectedAccount(w1, "gap", "g");

    let cursor: string | undefined;
    const texts = () =>
      socket!.received
        .filter((r) => r.event === "account.message" && r.payload.accountId === account.id)
        .map((r) => r.payload.text as string);
    socket = new RecordingSocket(url, undefined, "gap", {
      // The client's own cursor at each (re)connect, as a client of the contract keeps it.
      auth: (cb: (auth: object) => void) => cb(cursor ? { token: key, after: cursor } : { token: key }),
      reconnection: true,
      reconnectionDelay: 100,
      reconnectionDelayMax: 500,
    });
    socket.socket.onAny((_event: string, payload: { cursor?: unknown }) => {
      if (typeof payload?.cursor === "string") cursor = payload.cursor;
    });
    await socket.ready();
    let sent = 0;
    const send = async (n: number) => {
      for (let i = 0; i < n; i++)
        await w1.call(
          "accounts.simulate",
          {
            workspaceId: "gap",
            accountId: account.id,
            action: "message",
            from: "4915100000001",
            text: `m${sent++}`,
          },
          { nodeID: "w1" },
        );
    };
    await send(3);
    await waitFor(() => texts().length === 3, { what: "3 live messages" });

    const drops: string[] = [];
    socket.socket.on("disconnect", (reason: string) => drops.push(reason));
    proxy.cut();
    // Logged and broadcast while the gateway is off the bus.
    await send(5);
    proxy.restore();
    await waitFor(() => socket!.socket.connected && texts().length >= 8, {
      what: "the socket back, with what was sent while the gateway was away",
      timeoutMs: 20000,
    });
    await send(3);
    const want = Array.from({ length: sent }, (_, i) => `m${i}`);
    await waitFor(() => texts().length >= want.length, { what: `${want.length} messages`, timeoutMs: 10000 });
    assert.deepEqual(texts(), want, "every message once, in order");
    assert.deepEqual(
      drops,
      ["transport close"],
      "let go once, without a server disconnect (which ends retries)",
    );
  });
});
