// GET /api/v1/accounts pages with ?limit&cursor → {items, nextCursor}; without them it lists every
// account as before (nextCursor null). Real gateway and worker, simulated engine.
import { strict as assert } from "node:assert";
import { GatewayCluster, LONG_QR } from "./helpers.ts";

describe("api: GET /api/v1/accounts pagination", function () {
  this.timeout(60000);
  let gc: GatewayCluster;
  let key: string;
  const ids: string[] = [];

  before(async () => {
    gc = new GatewayCluster({ ...LONG_QR, rateLimitPerMinute: 100000 });
    await gc.addGateway("gw");
    await gc.addWorker("w1");
    await gc.start();
    key = (await gc.createKey("pages")).key;
    for (let i = 0; i < 5; i++) {
      const res = await gc.gw.call("POST", "/api/v1/accounts", { key, body: { name: `a${i}` } });
      assert.equal(res.status, 201);
      ids.push(res.json.id);
    }
  });
  after(async () => gc?.stop());

  const list = (query = "") => gc.gw.call("GET", `/api/v1/accounts${query}`, { key });

  it("without limit: every account, oldest first, nextCursor null", async () => {
    const res = await list();
    assert.equal(res.status, 200);
    assert.deepEqual(
      res.json.items.map((a: any) => a.id),
      ids,
    );
    assert.equal(res.json.nextCursor, null);
  });

  it("limit=2: three pages, each account once and in order, the last with nextCursor null", async () => {
    const seen: string[] = [];
    let query = "?limit=2";
    for (let page = 1; ; page++) {
      const res = await list(query);
      assert.equal(res.status, 200, String(res.body));
      assert.ok(res.json.items.length <= 2);
      seen.push(...res.json.items.map((a: any) => a.id));
      if (res.json.nextCursor === null) {
        assert.equal(page, 3);
        break;
      }
      query = `?limit=2&cursor=${res.json.nextCursor}`;
    }
    assert.deepEqual(seen, ids);
  });

  it("a cursor stays valid when the account it names is deleted", async () => {
    const first = await list("?limit=2");
    const del = await gc.gw.call("DELETE", `/api/v1/accounts/${ids[1]}`, { key });
    assert.equal(del.status, 200);
    const next = await list(`?limit=10&cursor=${first.json.nextCursor}`);
    assert.deepEqual(
      next.json.items.map((a: any) => a.id),
      ids.slice(2),
    );
  });

  it("a malformed limit or cursor → 422 VALIDATION_ERROR", async () => {
    for (const q of ["?limit=0", "?limit=abc", "?limit=5000", "?cursor=%24%24", "?cursor=bm90LWEtY3Vyc29y"]) {
      const res = await list(q);
      assert.equal(res.status, 422, `${q}: ${res.body}`);
      assert.equal(res.json.type, "VALIDATION_ERROR");
    }
  });
});
