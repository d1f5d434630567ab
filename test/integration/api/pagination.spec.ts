// GET /api/v1/accounts pages with ?limit&cursor → {items, nextCursor}; without them it lists every
// account as before (nextCursor null). Real gateway and worker, simulated engine.
import { strict as assert } from "node:assert";
import type { Context, ServiceSchema } from "moleculer";
import SessionService from "../../../services/session.service.ts";
import { WorkspaceUnavailableError } from "../../../src/errors.ts";
import type { CreateAccountParams } from "../../../src/accounts/types.ts";
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

describe("api: GET /api/v1/accounts pagination, an account recorded by the gateway's fallback", function () {
  this.timeout(60000);
  let gc: GatewayCluster;
  /** How long the worker takes to refuse a create named "fallback" (no worker could record it). */
  const REFUSE_AFTER_MS = 300;
  const refusingCreate: ServiceSchema = {
    name: "session",
    mixins: [SessionService as unknown as ServiceSchema],
    hooks: {
      before: {
        async create(ctx: Context<CreateAccountParams>) {
          if (ctx.params.name !== "fallback") return;
          await new Promise((r) => setTimeout(r, REFUSE_AFTER_MS));
          throw new WorkspaceUnavailableError(ctx.params.workspaceId, "owner unreachable (test)");
        },
      },
    },
  };

  before(async () => {
    gc = new GatewayCluster({ ...LONG_QR, rateLimitPerMinute: 100000 });
    await gc.addGateway("gw");
    gc.workers.push(gc.cluster.node("w1", [refusingCreate], { services: ["session"] }));
    await gc.start();
  });
  after(async () => gc?.stop());

  it("is not skipped by a traversal whose cursor passed accounts created while it was being recorded", async () => {
    const { key } = await gc.createKey("late");
    const create = (name: string) => gc.gw.call("POST", "/api/v1/accounts", { key, body: { name } });
    const list = (query: string) => gc.gw.call("GET", `/api/v1/accounts${query}`, { key });
    const late = create("fallback");
    // Two accounts recorded while the first create waits for its worker.
    await new Promise((r) => setTimeout(r, 50));
    const others = [await create("b"), await create("c")];
    for (const o of others) assert.equal(o.status, 201, String(o.body));
    // A client pages through meanwhile: its first page, then the rest once the first create answered.
    const first = await list("?limit=1");
    assert.equal(first.status, 200, String(first.body));
    const seen: string[] = first.json.items.map((a: { id: string }) => a.id);
    const made = await late;
    assert.equal(made.status, 201, String(made.body));
    assert.equal(made.json.node, undefined, "recorded by the fallback, unplaced");
    for (let cursor = first.json.nextCursor; cursor !== null;) {
      const page = await list(`?limit=1&cursor=${cursor}`);
      assert.equal(page.status, 200, String(page.body));
      seen.push(...page.json.items.map((a: { id: string }) => a.id));
      cursor = page.json.nextCursor;
    }
    assert.deepEqual(seen.sort(), [made.json.id, ...others.map((o) => o.json.id)].sort());
  });
});
