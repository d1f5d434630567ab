// Socket.IO handshakes and open sockets under the gateway's key rules: wrong keys count against the
// client address's failed-auth limit (shared with REST), and an open socket whose key disappeared is
// dropped by the periodic re-check even when the revocation broadcast never came.
import { strict as assert } from "node:assert";
import { request } from "node:http";
import { MongoClient } from "mongodb";
import type { ServiceBroker } from "moleculer";
import AccountsService from "../../../services/accounts.service.ts";
import { createApiService } from "../../../services/api.service.ts";
import IoService from "../../../services/io.service.ts";
import SessionService from "../../../services/session.service.ts";
import { INVALID_TOKEN_MESSAGE } from "../../../src/io/socket-auth.ts";
import { KeysRepo } from "../../../src/store/keys-repo.ts";
import { TestCluster, type ConfigOverrides } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";
import { RecordingSocket, Rest, gatewayPort } from "../io/support.ts";

const ADMIN = "socket-keys-spec-admin-key-32-chars";

describe("security: socket keys", function () {
  this.timeout(60000);
  let cluster: TestCluster;
  let gw: ServiceBroker;
  let port: number;
  const sockets: RecordingSocket[] = [];

  before(async () => {
    const shared: ConfigOverrides = { adminApiKey: ADMIN, authFailuresPerMinute: 3, socketKeyCheckMs: 200 };
    cluster = new TestCluster(shared, "sockkeys");
    const overrides: ConfigOverrides = { services: ["api", "io", "accounts"], port: 0 };
    gw = cluster.node(
      "gw",
      [createApiService(cluster.config("gw", overrides)), IoService, AccountsService],
      overrides,
    );
    cluster.node("w1", [SessionService], { services: ["session"] });
    await cluster.start();
    await gw.waitForServices(["session", "accounts", "api"], 15000);
    port = gatewayPort(gw);
  });

  afterEach(() => {
    for (const s of sockets.splice(0)) s.close();
  });

  after(async () => cluster?.stop());

  async function newKey(workspaceId: string): Promise<{ key: string; keyId: string }> {
    return new Rest(`http://127.0.0.1:${port}`).ok(
      "POST",
      `/api/v1/workspaces/${workspaceId}/keys`,
      ADMIN,
      {},
    );
  }

  it("a socket whose key record is gone is dropped by the re-check, without any broadcast", async () => {
    const { key, keyId } = await newKey("recheck");
    const s = new RecordingSocket(`http://127.0.0.1:${port}`, { token: key }, "recheck");
    sockets.push(s);
    await s.ready();
    const revoked = new Promise((resolve) => s.socket.once("auth.revoked", resolve));
    // Straight in the database: no gateway hears of it (as when the `apikeys.revoked` broadcast is lost).
    const mongo = await MongoClient.connect(cluster.mongoUrl);
    try {
      assert.equal(await new KeysRepo(mongo.db()).deleteOfWorkspace("recheck", keyId), true);
    } finally {
      await mongo.close();
    }
    assert.deepEqual(await revoked, { keyId, message: "This API key was revoked" });
    await waitFor(() => !s.socket.connected, { what: "the socket to be dropped" });
  });

  it("wrong keys at the handshake count against the address's limit, shared with REST", async () => {
    // From another loopback address than the other tests': its strikes are its own.
    const from = { localAddress: "127.0.0.2" };
    const url = `http://127.0.0.1:${port}`;
    const { key } = await newKey("limited");
    for (let i = 0; i < 3; i++) {
      const token = `sbk_0123456789abcdef_${String(i).repeat(64)}`;
      const wrong = new RecordingSocket(url, { token }, undefined, from);
      sockets.push(wrong);
      assert.equal((await wrong.refused()).message, INVALID_TOKEN_MESSAGE, `wrong key ${i + 1}`);
    }
    const right = new RecordingSocket(url, { token: key }, undefined, from);
    sockets.push(right);
    const refusal = await right.refused();
    assert.equal(refusal.data.type, "RATE_LIMITED");
    assert.equal(refusal.data.code, 429);
    assert.ok(refusal.data.retryAfter >= 1);
    assert.equal(await restStatusFrom("127.0.0.2", key), 429, "REST from that address is refused too");
    // Another address is not affected.
    const elsewhere = new RecordingSocket(url, { token: key }, "limited");
    sockets.push(elsewhere);
    await elsewhere.ready();
  });

  function restStatusFrom(localAddress: string, key: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port,
          path: "/api/v1/accounts",
          localAddress,
          headers: { authorization: `Bearer ${key}` },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.once("error", reject);
      req.end();
    });
  }
});
