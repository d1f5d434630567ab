// GET /api/v1/events over a real gateway: pages through a workspace's log by cursor, shows only the
// caller's workspace, needs the admin key to name one, and refuses a malformed cursor with a 422.
import { strict as assert } from "node:assert";
import type { AccountView } from "../../../src/accounts/types.ts";
import { GatewayCluster } from "../api/helpers.ts";
import { connectedAccount, LONG_QR, simulateMessage } from "./support.ts";

describe("events: GET /api/v1/events", function () {
  this.timeout(60000);
  let api: GatewayCluster;
  let keyA: string;
  let keyB: string;
  let accountA: AccountView;

  before(async () => {
    api = new GatewayCluster({ qr: LONG_QR, rateLimitPerMinute: 100000 });
    await api.addGateway("gw");
    await api.addWorker("w1");
    await api.start();
    keyA = (await api.createKey("evA")).key;
    keyB = (await api.createKey("evB")).key;
    accountA = await connectedAccount(api.gw.broker, "evA", "a");
    for (let i = 0; i < 5; i++) await simulateMessage(api.gw.broker, "evA", accountA.id, i);
    await connectedAccount(api.gw.broker, "evB", "b");
  });
  after(async () => api?.stop());

  async function pages(key: string, limit: number, extra = ""): Promise<{ pages: number; items: any[] }> {
    const items: any[] = [];
    let after = "0";
    for (let n = 1; ; n++) {
      const res = await api.gw.call("GET", `/api/v1/events?after=${after}&limit=${limit}${extra}`, { key });
      assert.equal(res.status, 200, JSON.stringify(res.json));
      assert.ok(res.json.items.length <= limit);
      if (res.json.items.length === 0) {
        assert.equal(res.json.nextCursor, after, "an empty page keeps the cursor");
        return { pages: n, items };
      }
      items.push(...res.json.items);
      assert.equal(res.json.nextCursor, res.json.items.at(-1).cursor);
      after = res.json.nextCursor;
    }
  }

  it("pages through the workspace's events in order, each once, with the cursor in the payload", async () => {
    const { pages: n, items } = await pages(keyA, 3);
    // created, initializing, qr_scanning, authenticated?, connected, 5 messages: at least 9.
    assert.ok(items.length >= 9, `${items.length} events`);
    assert.ok(n >= 4);
    assert.deepEqual(
      items.map((i) => i.cursor),
      items.map((_, i) => String(i + 1)),
    );
    assert.equal(items[0].event, "account.created");
    assert.equal(items[0].payload.account.id, accountA.id);
    for (const item of items) {
      assert.equal(item.payload.cursor, item.cursor);
      assert.ok(!Number.isNaN(Date.parse(item.at)));
    }
    assert.deepEqual(
      items.filter((i) => i.event === "account.message").map((i) => i.payload.text),
      ["m0", "m1", "m2", "m3", "m4"],
    );
    assert.ok(
      items.every((i) => i.event !== "account.qr"),
      "QR codes are not logged",
    );
    // The same from a later cursor.
    const res = await api.gw.call("GET", `/api/v1/events?after=${items.length - 2}`, { key: keyA });
    assert.deepEqual(res.json.items, items.slice(-2));
  });

  it("each workspace key sees only its workspace; the admin key must name one", async () => {
    const a = (await pages(keyA, 100)).items;
    const b = (await pages(keyB, 100)).items;
    assert.ok(b.length >= 3);
    assert.ok(b.every((i) => (i.payload.workspaceId ?? i.payload.account?.workspaceId) === "evB"));
    assert.ok(a.every((i) => (i.payload.workspaceId ?? i.payload.account?.workspaceId) === "evA"));
    // Workspace keys cannot pick another workspace.
    const crossed = (await pages(keyB, 100, "&workspaceId=evA")).items;
    assert.deepEqual(crossed, b);
    const admin = await api.gw.call("GET", "/api/v1/events?after=0&workspaceId=evA&limit=1000", {
      key: api.adminKey,
    });
    assert.deepEqual(admin.json.items, a);
    const unnamed = await api.gw.call("GET", "/api/v1/events", { key: api.adminKey });
    assert.equal(unnamed.status, 422);
    assert.equal(unnamed.json.type, "VALIDATION_ERROR");
  });

  it("a malformed cursor or limit is a 422 VALIDATION_ERROR", async () => {
    for (const query of [
      "after=abc",
      "after=-1",
      "after=01",
      "after=1e3",
      "limit=0",
      "limit=1001",
      "limit=x",
    ]) {
      const res = await api.gw.call("GET", `/api/v1/events?${query}`, { key: keyA });
      assert.equal(res.status, 422, query);
      assert.equal(res.json.type, "VALIDATION_ERROR", query);
    }
    const none = await api.gw.call("GET", "/api/v1/events");
    assert.equal(none.status, 401);
  });
});
