// Every REST route of DESIGN.md ("Interfaces"), success and failure, against a real cluster: a gateway
// (api + accounts), a second gateway with a tiny rate limit and CORS, and 2 workers (session) over the
// run's NATS and MongoDB-wire server; gateways listen on port 0.
import { strict as assert } from "node:assert";
import { gzipSync } from "node:zlib";
import { createHash } from "node:crypto";
import { MongoClient } from "mongodb";
import { ROUTES, fullPath } from "../../../src/gateway/routes.ts";
import { CLUSTER_ACTIONS } from "../../../src/placement/actions.ts";
import { waitFor } from "../../support/wait.ts";
import {
  accountRoutePath,
  GatewayCluster,
  LONG_QR,
  waitForStatus,
  type GatewayNode,
  type HttpResult,
} from "./helpers.ts";

function assertError(res: HttpResult, status: number, type: string) {
  assert.equal(res.status, status, `expected ${status} ${type}, got ${res.status} ${res.body}`);
  assert.match(String(res.headers["content-type"]), /application\/json/);
  assert.equal(res.json.type, type, `type of ${res.body}`);
  assert.equal(res.json.code, status);
  assert.equal(typeof res.json.name, "string");
  assert.equal(typeof res.json.message, "string");
}

describe("api: every route against a real cluster (gateway + 2 workers)", function () {
  this.timeout(60000);
  let gc: GatewayCluster;
  let gw: GatewayNode;
  let limited: GatewayNode;
  let keyA: { key: string; keyId: string };
  let keyB: { key: string; keyId: string };

  before(async () => {
    gc = new GatewayCluster(LONG_QR);
    await gc.addGateway("gw");
    await gc.addGateway("gw-limited", { rateLimitPerMinute: 3, corsOrigins: "http://allowed.example" });
    await gc.addWorker("w1");
    await gc.addWorker("w2");
    await gc.start();
    gw = gc.gateways.find((g) => g.broker.nodeID === "gw")!;
    limited = gc.gateways.find((g) => g.broker.nodeID === "gw-limited")!;
    keyA = await gc.createKey("wsA");
    keyB = await gc.createKey("wsB");
  });
  after(() => gc?.stop());

  describe("keys", () => {
    it("POST /workspaces/:ws/keys (admin) → 201 {key, keyId}; stored as a SHA-256 hash only", async () => {
      const res = await gw.call("POST", "/api/v1/workspaces/ws-keys/keys", { key: gc.adminKey });
      assert.equal(res.status, 201);
      assert.match(res.json.key, /^sbk_[0-9a-f]{16}_[0-9a-f]{64}$/);
      assert.equal(typeof res.json.keyId, "string");
      const client = await MongoClient.connect(gc.cluster.mongoUrl);
      try {
        const doc = await client.db().collection("api_keys").findOne({ _id: res.json.keyId });
        assert.ok(doc);
        assert.equal(doc.hash, createHash("sha256").update(res.json.key).digest("hex"));
        assert.ok(!JSON.stringify(doc).includes(res.json.key), "the key itself is stored");
      } finally {
        await client.close();
      }
    });

    it("key routes refuse workspace keys (403), missing (401) and forged keys (401), bad ids (422)", async () => {
      assertError(await gw.call("POST", "/api/v1/workspaces/wsA/keys", { key: keyA.key }), 403, "FORBIDDEN");
      assertError(await gw.call("POST", "/api/v1/workspaces/wsA/keys"), 401, "UNAUTHORIZED");
      assertError(
        await gw.call("POST", "/api/v1/workspaces/wsA/keys", {
          key: keyA.key.slice(0, -1) + (keyA.key.endsWith("0") ? "1" : "0"),
        }),
        401,
        "UNAUTHORIZED",
      );
      assertError(
        await gw.call("POST", "/api/v1/workspaces/bad%24id/keys", { key: gc.adminKey }),
        422,
        "VALIDATION_ERROR",
      );
    });

    it("GET /workspaces/:ws/keys lists ids, never keys; DELETE revokes on every gateway at once", async () => {
      const k = await gc.createKey("ws-revoke");
      // Both gateways have verified (and cached) the key.
      assert.equal((await gw.call("GET", "/api/v1/accounts", { key: k.key })).status, 200);
      assert.equal((await limited.call("GET", "/api/v1/accounts", { key: k.key })).status, 200);
      const list = await gw.call("GET", "/api/v1/workspaces/ws-revoke/keys", { key: gc.adminKey });
      assert.equal(list.status, 200);
      assert.deepEqual(
        list.json.items.map((i: { keyId: string }) => i.keyId),
        [k.keyId],
      );
      assert.ok(!list.body.toString().includes(k.key));
      // Another workspace's path cannot revoke it.
      assertError(
        await gw.call("DELETE", `/api/v1/workspaces/wsA/keys/${k.keyId}`, { key: gc.adminKey }),
        404,
        "NOT_FOUND",
      );
      const del = await gw.call("DELETE", `/api/v1/workspaces/ws-revoke/keys/${k.keyId}`, {
        key: gc.adminKey,
      });
      assert.equal(del.status, 204);
      assertError(await gw.call("GET", "/api/v1/accounts", { key: k.key }), 401, "UNAUTHORIZED");
      await waitFor(
        async () => (await limited.call("GET", "/api/v1/accounts", { key: k.key })).status === 401,
        {
          what: "the other gateway to refuse the revoked key",
          timeoutMs: 3000,
        },
      );
      assertError(
        await gw.call("DELETE", `/api/v1/workspaces/ws-revoke/keys/${k.keyId}`, { key: gc.adminKey }),
        404,
        "NOT_FOUND",
      );
    });

    it("accepts X-API-Key as well as Authorization: Bearer", async () => {
      const res = await gw.call("GET", "/api/v1/accounts", { headers: { "x-api-key": keyA.key } });
      assert.equal(res.status, 200);
    });
  });

  describe("accounts", () => {
    let scanning: string;
    let other: string;

    it("POST /accounts → 201 initializing, in the key's workspace whatever the body says", async () => {
      const res = await gw.call("POST", "/api/v1/accounts", {
        key: keyA.key,
        body: { name: "Sales", workspaceId: "wsB" },
      });
      assert.equal(res.status, 201, String(res.body));
      assert.equal(res.json.status, "initializing");
      assert.equal(res.json.workspaceId, "wsA");
      assert.equal(res.json.name, "Sales");
      assert.equal(res.json.engine, "simulated");
      assert.equal(res.headers.location, `/api/v1/accounts/${res.json.id}`);
      scanning = res.json.id;
      other = (await gw.call("POST", "/api/v1/accounts", { key: keyA.key, body: {} })).json.id;
    });

    it("POST /accounts validates its body (422) and rejects an unknown engine (422)", async () => {
      assertError(
        await gw.call("POST", "/api/v1/accounts", { key: keyA.key, body: { name: 5 } }),
        422,
        "VALIDATION_ERROR",
      );
      assertError(
        await gw.call("POST", "/api/v1/accounts", { key: keyA.key, body: { name: "" } }),
        422,
        "VALIDATION_ERROR",
      );
      const res = await gw.call("POST", "/api/v1/accounts", { key: keyA.key, body: { engine: "nosuch" } });
      assert.equal(res.status, 422);
      assert.equal(typeof res.json.type, "string");
    });

    it("GET /accounts lists the workspace's accounts; GET /accounts/:id gets one", async () => {
      const list = await gw.call("GET", "/api/v1/accounts", { key: keyA.key });
      assert.equal(list.status, 200);
      const ids = list.json.items.map((a: { id: string }) => a.id);
      assert.ok(ids.includes(scanning) && ids.includes(other));
      const one = await gw.call("GET", `/api/v1/accounts/${scanning}`, { key: keyA.key });
      assert.equal(one.status, 200);
      assert.equal(one.json.id, scanning);
      for (const field of [
        "id",
        "workspaceId",
        "sessionId",
        "name",
        "engine",
        "status",
        "createdAt",
        "updatedAt",
      ]) {
        assert.ok(field in one.json, `account has ${field}`);
      }
    });

    it("GET /accounts/:id → 404 for an unknown id, 422 for a malformed one", async () => {
      assertError(
        await gw.call("GET", "/api/v1/accounts/acc_doesnotexist0000", { key: keyA.key }),
        404,
        "NOT_FOUND",
      );
      assertError(
        await gw.call("GET", "/api/v1/accounts/..%2f..", { key: keyA.key }),
        422,
        "VALIDATION_ERROR",
      );
    });

    it("admin key on account routes must name the workspace", async () => {
      assertError(await gw.call("GET", "/api/v1/accounts", { key: gc.adminKey }), 422, "VALIDATION_ERROR");
      const res = await gw.call("GET", "/api/v1/accounts?workspaceId=wsA", { key: gc.adminKey });
      assert.equal(res.status, 200);
      assert.ok(res.json.items.some((a: { id: string }) => a.id === scanning));
    });

    it("GET /accounts/:id/qr → {qr, dataUrl, seq, expiresAt}; ?format=png → image/png; bad format 422", async () => {
      await waitForStatus(gw, keyA.key, scanning, "qr_scanning");
      const res = await gw.call("GET", `/api/v1/accounts/${scanning}/qr`, { key: keyA.key });
      assert.equal(res.status, 200, String(res.body));
      assert.equal(typeof res.json.qr, "string");
      assert.match(res.json.dataUrl, /^data:image\/png;base64,/);
      assert.equal(typeof res.json.seq, "number");
      assert.ok(res.json.expiresAt > Date.now());
      const png = await gw.call("GET", `/api/v1/accounts/${scanning}/qr?format=png`, { key: keyA.key });
      assert.equal(png.status, 200);
      assert.equal(png.headers["content-type"], "image/png");
      assert.deepEqual([...png.body.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      assertError(
        await gw.call("GET", `/api/v1/accounts/${scanning}/qr?format=gif`, { key: keyA.key }),
        422,
        "VALIDATION_ERROR",
      );
    });

    it("POST /accounts/:id/pairing-code {phoneNumber} → {code}; 422 without a valid number", async () => {
      await waitForStatus(gw, keyA.key, other, "qr_scanning");
      const res = await gw.call("POST", `/api/v1/accounts/${other}/pairing-code`, {
        key: keyA.key,
        body: { phoneNumber: "4915112345678" },
      });
      assert.equal(res.status, 200, String(res.body));
      assert.equal(typeof res.json.code, "string");
      assertError(
        await gw.call("POST", `/api/v1/accounts/${other}/pairing-code`, {
          key: keyA.key,
          body: { phoneNumber: "x" },
        }),
        422,
        "VALIDATION_ERROR",
      );
    });

    it("POST …/simulate/scan connects the account; the QR is then a 409", async () => {
      assertError(
        await gw.call("POST", `/api/v1/accounts/${scanning}/simulate/scan`, { key: keyA.key, body: {} }),
        422,
        "VALIDATION_ERROR",
      );
      const res = await gw.call("POST", `/api/v1/accounts/${scanning}/simulate/scan`, {
        key: keyA.key,
        body: { phoneNumber: "4915100000001" },
      });
      assert.equal(res.status, 200, String(res.body));
      await waitForStatus(gw, keyA.key, scanning, "connected");
      assertError(
        await gw.call("GET", `/api/v1/accounts/${scanning}/qr`, { key: keyA.key }),
        409,
        "INVALID_STATE",
      );
    });

    it("POST …/messages {to, text} sends; 422 without text; simulate/message delivers one", async () => {
      const res = await gw.call("POST", `/api/v1/accounts/${scanning}/messages`, {
        key: keyA.key,
        body: { to: "4915100000002", text: "hello" },
      });
      assert.equal(res.status, 200, String(res.body));
      assert.equal(typeof res.json.id, "string");
      assertError(
        await gw.call("POST", `/api/v1/accounts/${scanning}/messages`, {
          key: keyA.key,
          body: { to: "49151" },
        }),
        422,
        "VALIDATION_ERROR",
      );
      const msg = await gw.call("POST", `/api/v1/accounts/${scanning}/simulate/message`, {
        key: keyA.key,
        body: { from: "4915100000003", text: "hi" },
      });
      assert.equal(msg.status, 200, String(msg.body));
      assertError(
        await gw.call("POST", `/api/v1/accounts/${scanning}/simulate/message`, {
          key: keyA.key,
          body: { from: 1 },
        }),
        422,
        "VALIDATION_ERROR",
      );
    });

    it("POST …/simulate/disconnect, …/restart, …/simulate/logout, …/logout", async () => {
      const dis = await gw.call("POST", `/api/v1/accounts/${scanning}/simulate/disconnect`, {
        key: keyA.key,
      });
      assert.equal(dis.status, 200, String(dis.body));
      const restart = await gw.call("POST", `/api/v1/accounts/${scanning}/restart`, { key: keyA.key });
      assert.equal(restart.status, 200, String(restart.body));
      await waitForStatus(gw, keyA.key, scanning, "connected");
      const simLogout = await gw.call("POST", `/api/v1/accounts/${scanning}/simulate/logout`, {
        key: keyA.key,
      });
      assert.equal(simLogout.status, 200, String(simLogout.body));
      await waitForStatus(gw, keyA.key, scanning, "logged_out");
      const logout = await gw.call("POST", `/api/v1/accounts/${other}/logout`, { key: keyA.key });
      assert.equal(logout.status, 200, String(logout.body));
      assertError(
        await gw.call("POST", `/api/v1/accounts/acc_doesnotexist0000/restart`, { key: keyA.key }),
        404,
        "NOT_FOUND",
      );
    });

    it("DELETE /accounts/:id deletes; then 404", async () => {
      const res = await gw.call("DELETE", `/api/v1/accounts/${other}`, { key: keyA.key });
      assert.equal(res.status, 200, String(res.body));
      assertError(await gw.call("GET", `/api/v1/accounts/${other}`, { key: keyA.key }), 404, "NOT_FOUND");
      assertError(await gw.call("DELETE", `/api/v1/accounts/${other}`, { key: keyA.key }), 404, "NOT_FOUND");
    });

    it("another workspace's account is a 404 on every account route", async () => {
      for (const route of ROUTES.filter((r) => r.path.startsWith("/accounts/:accountId"))) {
        // Every other path param valid, so that only the account can be what is not found.
        const path = accountRoutePath(fullPath(route), scanning);
        const res = await gw.call(route.method, path, {
          key: keyB.key,
          body:
            route.method === "GET"
              ? undefined
              : {
                  phoneNumber: "4915100000009",
                  to: "1234567",
                  text: "x",
                  from: "1234567",
                  name: "x",
                  participants: ["15550000002"],
                },
        });
        assertError(res, 404, "NOT_FOUND");
      }
    });
  });

  describe("cluster (admin)", () => {
    const hasCluster = () => Boolean(gw.broker.registry.getActionEndpoints(CLUSTER_ACTIONS.nodes));

    it("workspace keys get 403 on every cluster route", async () => {
      for (const [method, path] of [
        ["GET", "/api/v1/cluster/nodes"],
        ["GET", "/api/v1/cluster/placement/wsA"],
        ["POST", "/api/v1/cluster/nodes/w1/drain"],
        ["POST", "/api/v1/cluster/rebalance"],
      ]) {
        assertError(await gw.call(method, path, { key: keyA.key }), 403, "FORBIDDEN");
      }
    });

    it("GET /cluster/nodes → {items: [{nodeId, pid, host, services, capacity, sessions, draining}]}, or 503 without workers", async () => {
      const res = await gw.call("GET", "/api/v1/cluster/nodes", { key: gc.adminKey });
      if (!hasCluster()) return assertError(res, 503, "SERVICE_UNAVAILABLE");
      assert.equal(res.status, 200, String(res.body));
      const ids = res.json.items.map((n: { nodeId: string }) => n.nodeId);
      assert.ok(ids.includes("w1") && ids.includes("w2"), `nodes: ${ids}`);
      for (const f of ["nodeId", "pid", "host", "services", "capacity", "sessions", "draining"]) {
        assert.ok(f in res.json.items[0], `node has ${f}`);
      }
    });

    it("GET /cluster/placement/:ws → {workspaceId, node, epoch} of the node running it; 422 on a bad id; or 503", async () => {
      const res0 = await gw.call("GET", "/api/v1/cluster/placement/wsB", { key: gc.adminKey });
      if (!hasCluster()) return assertError(res0, 503, "SERVICE_UNAVAILABLE");
      const created = await gw.call("POST", "/api/v1/accounts", { key: keyB.key, body: { name: "placed" } });
      const account = await waitForStatus(gw, keyB.key, created.json.id, "qr_scanning");
      const res = await gw.call("GET", "/api/v1/cluster/placement/wsB", { key: gc.adminKey });
      assert.equal(res.status, 200, String(res.body));
      assert.equal(res.json.workspaceId, "wsB");
      assert.equal(res.json.node, account.node);
      assert.equal(typeof res.json.epoch, "number");
      assertError(
        await gw.call("GET", "/api/v1/cluster/placement/bad%24", { key: gc.adminKey }),
        422,
        "VALIDATION_ERROR",
      );
    });

    it("POST /cluster/rebalance (422 on a bad max) and /cluster/nodes/:id/drain, or 503", async () => {
      const bad = await gw.call("POST", "/api/v1/cluster/rebalance", {
        key: gc.adminKey,
        body: { max: "x" },
      });
      if (!hasCluster()) {
        assertError(
          await gw.call("POST", "/api/v1/cluster/rebalance", { key: gc.adminKey }),
          503,
          "SERVICE_UNAVAILABLE",
        );
        for (const path of ["/api/v1/cluster/nodes/w2/drain", "/api/v1/cluster/nodes/w2/undrain"])
          assertError(await gw.call("POST", path, { key: gc.adminKey }), 503, "SERVICE_UNAVAILABLE");
        return;
      }
      assertError(bad, 422, "VALIDATION_ERROR");
      const res = await gw.call("POST", "/api/v1/cluster/rebalance", { key: gc.adminKey, body: { max: 1 } });
      assert.equal(res.status, 200, String(res.body));
      assert.ok(Array.isArray(res.json.moved));
      assertError(
        await gw.call("POST", "/api/v1/cluster/nodes/nope/drain", { key: gc.adminKey }),
        404,
        "NOT_FOUND",
      );
      // A live node that is no worker (a gateway, this one or another) has nothing to drain: as unknown.
      for (const nodeId of ["gw", "gw-limited"])
        for (const action of ["drain", "undrain"])
          assertError(
            await gw.call("POST", `/api/v1/cluster/nodes/${nodeId}/${action}`, { key: gc.adminKey }),
            404,
            "NOT_FOUND",
          );
      const drained = await gw.call("POST", "/api/v1/cluster/nodes/w2/drain", { key: gc.adminKey });
      assert.equal(drained.status, 200, String(drained.body));
      assert.equal(drained.json.nodeId, "w2");
      // A drain of a loaded node outlasts the broker's request timeout: the gateway's call gets the
      // action's own, longer timeout (moleculer's timeout middleware reads it from the remote action).
      const drainEndpoint = gw.broker.registry.getActionEndpoints("cluster.drain")?.endpoints[0];
      const drainTimeout = (drainEndpoint?.action as { timeout?: number } | undefined)?.timeout ?? 0;
      assert.ok(drainTimeout > (gw.broker.options.requestTimeout ?? 0), `drain timeout ${drainTimeout}`);
      // The node's liveness record (renewed every lease period) shows it draining soon after.
      await waitFor(
        async () => {
          const nodes = await gw.call("GET", "/api/v1/cluster/nodes", { key: gc.adminKey });
          return nodes.json.items.find((n: { nodeId: string }) => n.nodeId === "w2")?.draining === true;
        },
        { what: "w2 to show draining", timeoutMs: 10000 },
      );
      // Undrained (this test restores what it changed): w2 takes workspaces again and says so.
      const undrained = await gw.call("POST", "/api/v1/cluster/nodes/w2/undrain", { key: gc.adminKey });
      assert.equal(undrained.status, 200, String(undrained.body));
      assert.deepEqual(undrained.json, { nodeId: "w2", draining: false });
      await waitFor(
        async () => {
          const nodes = await gw.call("GET", "/api/v1/cluster/nodes", { key: gc.adminKey });
          return nodes.json.items.find((n: { nodeId: string }) => n.nodeId === "w2")?.draining === false;
        },
        { what: "w2 to show it no longer drains", timeoutMs: 10000 },
      );
    });
  });

  describe("gateway behaviour", () => {
    it("unknown routes → 404 ROUTE_NOT_FOUND; bad JSON → 400 BAD_JSON; > 64 kB → 413 PAYLOAD_TOO_LARGE", async () => {
      assertError(await gw.call("GET", "/api/v1/nothing", { key: keyA.key }), 404, "ROUTE_NOT_FOUND");
      assertError(await gw.call("GET", "/nothing"), 404, "ROUTE_NOT_FOUND");
      assertError(await gw.call("PUT", "/api/v1/accounts", { key: keyA.key }), 404, "ROUTE_NOT_FOUND");
      // The dashboard's files are served at /, not under /api/v1 (a path no route has).
      for (const file of ["/api/v1/app.js", "/api/v1/index.html", "/api/v1/"])
        assertError(await gw.call("GET", file, { key: keyA.key }), 404, "ROUTE_NOT_FOUND");
      assert.equal((await gw.call("GET", "/app.js")).status, 200, "the dashboard is still served");
      // Without CORS, OPTIONS is not a way to run the alias named by Access-Control-Request-Method.
      assertError(
        await gw.call("OPTIONS", `/api/v1/accounts/acc_x`, {
          key: keyA.key,
          headers: { "access-control-request-method": "DELETE" },
        }),
        404,
        "ROUTE_NOT_FOUND",
      );
      assertError(
        await gw.call("POST", "/api/v1/accounts", { key: keyA.key, body: "{not json" }),
        400,
        "BAD_JSON",
      );
      assertError(
        await gw.call("POST", "/api/v1/accounts", { key: keyA.key, body: { name: "x".repeat(70 * 1024) } }),
        413,
        "PAYLOAD_TOO_LARGE",
      );
      // A compressed body is refused, not inflated (a small upload must not become a large one).
      assertError(
        await gw.call("POST", "/api/v1/accounts", {
          key: keyA.key,
          body: gzipSync(JSON.stringify({ name: "zipped" })),
          headers: { "content-type": "application/json", "content-encoding": "gzip" },
        }),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
      );
    });

    it("a body that says it is no JSON → 415 UNSUPPORTED_MEDIA_TYPE, nothing created; one saying nothing is read as JSON", async () => {
      const k = await gc.createKey("ws-types");
      // `curl -d '{...}'` sends a form's type: the name was dropped and an unnamed account created.
      for (const type of [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
      ]) {
        const res = await gw.call("POST", "/api/v1/accounts", {
          key: k.key,
          body: '{"name":"typed"}',
          headers: { "content-type": type },
        });
        assertError(res, 415, "UNSUPPORTED_MEDIA_TYPE");
        assert.equal(res.json.data.contentType, type.split(";")[0]);
        assert.match(res.json.message, /Content-Type: application\/json/);
      }
      // JSON is UTF-8 (RFC 8259): another charset is refused, not decoded (UTF-7 hides `,` `[` `{`).
      for (const type of [
        "application/json; charset=utf-7",
        "application/json;charset=UTF-16LE",
        'application/json; charset="utf-7"',
        "application/json; charset=utf-8; charset=utf-7",
      ]) {
        const res = await gw.call("POST", "/api/v1/accounts", {
          key: k.key,
          body: '{"name":"typed"}',
          headers: { "content-type": type },
        });
        assertError(res, 415, "UNSUPPORTED_MEDIA_TYPE");
        assert.match(res.json.message, /UTF-8/, type);
      }
      assert.deepEqual((await gw.call("GET", "/api/v1/accounts", { key: k.key })).json.items, []);
      // A body without a type is read as JSON; a JSON subtype is JSON; a bodyless POST needs no type.
      const untyped = await gw.call("POST", "/api/v1/accounts", {
        key: k.key,
        body: '{"name":"untyped"}',
        headers: { "content-type": "" },
      });
      assert.equal(untyped.status, 201, String(untyped.body));
      assert.equal(untyped.json.name, "untyped");
      const subtype = await gw.call("POST", "/api/v1/accounts", {
        key: k.key,
        body: { name: "subtype" },
        headers: { "content-type": "application/vnd.switchboard+json; charset=utf-8" },
      });
      assert.equal(subtype.status, 201, String(subtype.body));
      const quoted = await gw.call("POST", "/api/v1/accounts", {
        key: k.key,
        body: { name: "quoted" },
        headers: { "content-type": 'application/json; Charset="UTF-8"' },
      });
      assert.equal(quoted.status, 201, String(quoted.body));
      const restarted = await gw.call("POST", `/api/v1/accounts/${subtype.json.id}/restart`, {
        key: k.key,
        headers: { "content-type": "text/plain" },
      });
      assert.equal(restarted.status, 200, String(restarted.body));
      for (const id of [untyped.json.id, subtype.json.id, quoted.json.id])
        assert.equal((await gw.call("DELETE", `/api/v1/accounts/${id}`, { key: k.key })).status, 200);
    });

    it("conditional headers never turn an answer into an empty 304: a create with If-None-Match: * is a 201 with the account", async () => {
      const k = await gc.createKey("ws-conditional");
      // moleculer-web answers 304 to any If-None-Match: * (an If-Modified-Since alongside would not be
      // fresh: the gateway sends no Last-Modified).
      const conditional = { "if-none-match": "*" };
      const created = await gw.call("POST", "/api/v1/accounts", {
        key: k.key,
        body: { name: "conditional" },
        headers: conditional,
      });
      assert.equal(created.status, 201, String(created.body));
      assert.equal(created.json.name, "conditional");
      const listed = await gw.call("GET", "/api/v1/accounts", { key: k.key, headers: conditional });
      assert.equal(listed.status, 200, String(listed.body));
      assert.deepEqual(
        listed.json.items.map((a: { id: string }) => a.id),
        [created.json.id],
      );
      const deleted = await gw.call("DELETE", `/api/v1/accounts/${created.json.id}`, {
        key: k.key,
        headers: conditional,
      });
      assert.equal(deleted.status, 200, String(deleted.body));
    });

    it("per-key rate limit → 429 RATE_LIMITED with Retry-After; other keys unaffected", async () => {
      const k = await gc.createKey("ws-rate");
      const statuses: number[] = [];
      let limitedRes: HttpResult | undefined;
      for (let i = 0; i < 5; i++) {
        const res = await limited.call("GET", "/api/v1/accounts", { key: k.key });
        statuses.push(res.status);
        if (res.status === 429) limitedRes = res;
      }
      assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
      assertError(limitedRes!, 429, "RATE_LIMITED");
      assert.ok(Number(limitedRes!.headers["retry-after"]) >= 1);
      assert.equal((await limited.call("GET", "/api/v1/accounts", { key: keyB.key })).status, 200);
    });

    it("CORS: an allowed origin's preflight gets the headers; another origin is refused with JSON", async () => {
      const pre = await limited.call("OPTIONS", "/api/v1/accounts", {
        headers: {
          origin: "http://allowed.example",
          "access-control-request-method": "POST",
          "access-control-request-headers": "authorization,content-type",
        },
      });
      assert.equal(pre.status, 204);
      assert.equal(pre.headers["access-control-allow-origin"], "http://allowed.example");
      assert.match(String(pre.headers["access-control-allow-methods"]), /\bPUT\b/, "PUT …/quotas too");
      // A preflight carries no key: its body is never read (this one would be a 400 BAD_JSON).
      const withBody = await limited.call("OPTIONS", "/api/v1/accounts/acc_x/messages", {
        body: "{not json",
        headers: {
          origin: "http://allowed.example",
          "access-control-request-method": "POST",
          "content-type": "application/json",
        },
      });
      assert.equal(withBody.status, 204);
      const bad = await limited.call("GET", "/api/v1/accounts", {
        key: keyB.key,
        headers: { origin: "http://evil.example" },
      });
      assertError(bad, 403, "ORIGIN_NOT_ALLOWED");
      // Refused before any route ran (a bad key, a body that is no JSON): the allowed origin can still
      // read why.
      const allowed = { origin: "http://allowed.example" };
      const unauthorized = await limited.call("GET", "/api/v1/accounts", {
        key: "sbk_nope",
        headers: allowed,
      });
      assertError(unauthorized, 401, "UNAUTHORIZED");
      assert.equal(unauthorized.headers["access-control-allow-origin"], "http://allowed.example");
      const badJson = await limited.call("POST", "/api/v1/accounts", {
        key: keyB.key,
        body: "{x",
        headers: { ...allowed, "content-type": "application/json" },
      });
      assertError(badJson, 400, "BAD_JSON");
      assert.equal(badJson.headers["access-control-allow-origin"], "http://allowed.example");
      assert.match(String(badJson.headers["access-control-expose-headers"]), /Retry-After/);
    });

    it("GET /api/openapi.json documents every route of the table; /api/docs renders it", async () => {
      const res = await gw.call("GET", "/api/openapi.json");
      assert.equal(res.status, 200);
      assert.equal(res.json.openapi, "3.1.0");
      for (const route of ROUTES) {
        const path = fullPath(route).replace(/:([A-Za-z0-9_]+)/g, "{$1}");
        assert.ok(res.json.paths[path]?.[route.method.toLowerCase()], `${route.method} ${path} documented`);
      }
      const docs = await gw.call("GET", "/api/docs");
      assert.equal(docs.status, 200);
      assert.match(String(docs.headers["content-type"]), /text\/html/);
      assert.ok(docs.body.toString().includes("/api/v1/accounts/{accountId}/qr"));
    });

    it("GET /metrics: Moleculer's metrics and Switchboard's (sessions, placements, start queue, QR served, failovers)", async () => {
      // A worker lost by heartbeat timeout, as the registry announces it.
      gw.broker.broadcastLocal("$node.disconnected", {
        node: { id: "gone", services: [{ name: "session" }] },
        unexpected: true,
      });
      gw.broker.broadcastLocal("$node.disconnected", {
        node: { id: "stopped", services: [{ name: "session" }] },
        unexpected: false,
      });
      const res = await gw.call("GET", "/metrics");
      assert.equal(res.status, 200);
      assert.match(String(res.headers["content-type"]), /text\/plain/);
      const text = res.body.toString();
      assert.match(text, /^moleculer_request_total\{/m);
      assert.match(text, /^switchboard_sessions\{node="w[12]",status="[a-z_]+"\} \d+$/m);
      assert.match(text, /^switchboard_placements\{node="w[12]"\} \d+$/m);
      assert.match(text, /^switchboard_qr_served\{format="png",nodeID="gw"\} [1-9]/m);
      assert.match(text, /^switchboard_failovers\{nodeID="gw"\} 1$/m);
      assert.match(text, /^# TYPE switchboard_start_queue_length gauge$/m);
    });

    it("GET /health/live → 200; /health/ready → 200 with NATS, MongoDB and workers", async () => {
      const live = await gw.call("GET", "/health/live");
      assert.equal(live.status, 200);
      assert.equal(live.json.live, true);
      const ready = await gw.call("GET", "/health/ready");
      assert.equal(ready.status, 200, String(ready.body));
      assert.equal(ready.json.ready, true);
      assert.deepEqual([...ready.json.checks.workers.nodes].sort(), ["w1", "w2"]);
    });

    it("/health/ready → 503 with details once no node runs `session`", async () => {
      await Promise.all(gc.workers.map((w) => w.stop()));
      const res = await waitFor(
        async () => {
          const r = await gw.call("GET", "/health/ready");
          return r.status === 503 ? r : null;
        },
        { what: "readiness to drop", timeoutMs: 10000 },
      );
      assert.equal(res.json.ready, false);
      assert.equal(res.json.checks.workers.ok, false);
      assert.equal(res.json.checks.nats.ok, true);
      assert.equal(res.json.checks.mongo.ok, true);
      assert.equal((await gw.call("GET", "/health/live")).status, 200);
    });
  });
});
