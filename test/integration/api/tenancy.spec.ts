// Tenancy: 20 workspaces (numeric ids like the old system's and names), each with its own key and
// accounts, on a real cluster (gateway + 2 workers). No key can read, change or delete another
// workspace's accounts, whatever it puts in the path, query or body; afterwards every account is
// exactly as it was.
import { strict as assert } from "node:assert";
import { MongoClient } from "mongodb";
import { ROUTES, fullPath } from "../../../src/gateway/routes.ts";
import { accountRoutePath, GatewayCluster, LONG_QR, waitForStatus, type GatewayNode } from "./helpers.ts";

const WORKSPACES = [
  ...Array.from({ length: 10 }, (_, i) => String(i + 1)),
  ...Array.from({ length: 10 }, (_, i) => `team-${String.fromCharCode(97 + i)}`),
];

const BODY = {
  phoneNumber: "4915100000009",
  to: "4915100000008",
  text: "x",
  from: "4915100000007",
  name: "n",
  participants: ["4915100000006"],
};

describe("api: tenancy across 20 workspaces", function () {
  this.timeout(120000);
  let gc: GatewayCluster;
  let gw: GatewayNode;
  const keys = new Map<string, string>();
  const accounts = new Map<string, string>(); // workspace → account id

  async function snapshot(): Promise<
    Map<string, { workspaceId: string; status: string; desiredState: string }>
  > {
    const client = await MongoClient.connect(gc.cluster.mongoUrl);
    try {
      const docs = await client.db().collection("accounts").find({}).toArray();
      return new Map(
        docs.map((d) => [
          String(d._id),
          { workspaceId: d.workspaceId, status: d.status, desiredState: d.desiredState, name: d.name },
        ]),
      );
    } finally {
      await client.close();
    }
  }

  before(async () => {
    gc = new GatewayCluster({ ...LONG_QR, rateLimitPerMinute: 100000 });
    await gc.addGateway("gw");
    await gc.addWorker("w1");
    await gc.addWorker("w2");
    await gc.start();
    gw = gc.gw;
    for (const ws of WORKSPACES) {
      const { key } = await gc.createKey(ws);
      keys.set(ws, key);
      const res = await gw.call("POST", "/api/v1/accounts", { key, body: { name: `acc of ${ws}` } });
      assert.equal(res.status, 201, String(res.body));
      assert.equal(res.json.workspaceId, ws);
      accounts.set(ws, res.json.id);
    }
    for (const ws of WORKSPACES) await waitForStatus(gw, keys.get(ws)!, accounts.get(ws)!, "qr_scanning");
  });
  after(() => gc?.stop());

  it("each key lists exactly its own workspace's accounts, whatever workspaceId it passes", async () => {
    for (const ws of WORKSPACES) {
      const key = keys.get(ws)!;
      const other = WORKSPACES[(WORKSPACES.indexOf(ws) + 1) % WORKSPACES.length];
      for (const path of [
        "/api/v1/accounts",
        `/api/v1/accounts?workspaceId=${other}`,
        `/api/v1/accounts?workspaceId[]=${other}`,
      ]) {
        const res = await gw.call("GET", path, { key });
        assert.equal(res.status, 200, `${path}: ${res.body}`);
        assert.deepEqual(
          res.json.items.map((a: { id: string }) => a.id),
          [accounts.get(ws)],
          `${ws} via ${path}`,
        );
        assert.ok(res.json.items.every((a: { workspaceId: string }) => a.workspaceId === ws));
      }
    }
  });

  it("no key reads another workspace's account (20 × 19 GETs and QR reads → 404)", async () => {
    for (const ws of WORKSPACES) {
      const key = keys.get(ws)!;
      await Promise.all(
        WORKSPACES.filter((o) => o !== ws).map(async (o) => {
          const id = accounts.get(o)!;
          for (const path of [`/api/v1/accounts/${id}`, `/api/v1/accounts/${id}/qr?workspaceId=${o}`]) {
            const res = await gw.call("GET", path, { key });
            assert.equal(
              res.status,
              404,
              `${ws} reading ${o}'s account via ${path}: ${res.status} ${res.body}`,
            );
            assert.equal(res.json.type, "NOT_FOUND");
            assert.ok(!res.body.toString().includes(`acc of`), "no account data in the answer");
          }
        }),
      );
    }
  });

  it("no key changes or deletes another workspace's account, on any route (→ 404)", async () => {
    const mutating = ROUTES.filter((r) => r.path.startsWith("/accounts/:accountId") && r.method !== "GET");
    assert.ok(mutating.length >= 9, "pairing-code, restart, logout, delete, messages, simulate ×4");
    for (const ws of WORKSPACES) {
      const key = keys.get(ws)!;
      const victim = WORKSPACES[(WORKSPACES.indexOf(ws) + 7) % WORKSPACES.length];
      const id = accounts.get(victim)!;
      for (const route of mutating) {
        const res = await gw.call(route.method, accountRoutePath(fullPath(route), id), {
          key,
          body: { ...BODY, workspaceId: victim },
        });
        assert.equal(
          res.status,
          404,
          `${ws} → ${route.id} on ${victim}'s account: ${res.status} ${res.body}`,
        );
        assert.equal(res.json.type, "NOT_FOUND");
      }
    }
  });

  it("workspace keys cannot manage keys or the cluster (403)", async () => {
    const key = keys.get("1")!;
    for (const [method, path] of [
      ["POST", "/api/v1/workspaces/2/keys"],
      ["GET", "/api/v1/workspaces/2/keys"],
      ["POST", "/api/v1/workspaces/1/keys"],
      ["DELETE", "/api/v1/workspaces/2/keys/0000000000000000"],
      ["GET", "/api/v1/cluster/nodes"],
      ["GET", "/api/v1/cluster/placement/2"],
    ]) {
      const res = await gw.call(method, path, { key });
      assert.equal(res.status, 403, `${method} ${path}: ${res.status} ${res.body}`);
    }
  });

  it("afterwards all 20 accounts are exactly as they were, each in its own workspace", async () => {
    const after = await snapshot();
    assert.equal(after.size, WORKSPACES.length);
    for (const ws of WORKSPACES) {
      const doc = after.get(accounts.get(ws)!);
      assert.ok(doc, `account of ${ws} still exists`);
      assert.equal(doc.workspaceId, ws);
      assert.equal(doc.desiredState, "running", `account of ${ws} was not stopped`);
      assert.equal(doc.status, "qr_scanning", `account of ${ws} was not touched`);
    }
    // And each owner still reaches its own account.
    for (const ws of WORKSPACES) {
      const res = await gw.call("GET", `/api/v1/accounts/${accounts.get(ws)}/qr`, { key: keys.get(ws)! });
      assert.equal(res.status, 200, `${ws}: ${res.body}`);
    }
  });
});
