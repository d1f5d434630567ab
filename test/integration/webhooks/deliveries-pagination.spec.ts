// GET /api/v1/webhooks/:id/deliveries pages with ?limit&cursor → {items, nextCursor}, newest first;
// without them it answers the newest 100 as before (now with `nextCursor`, null when there are no more).
// Real gateway, worker and webhooks node; the deliveries are those of real account events.
import { strict as assert } from "node:assert";
import type { ServiceSchema } from "moleculer";
import WebhooksSchema from "../../../services/webhooks.service.ts";
import { GatewayCluster, LONG_QR } from "../api/helpers.ts";
import { waitFor } from "../../support/wait.ts";
import { WebhookReceiver } from "./receiver.ts";

const WebhooksService = WebhooksSchema as unknown as ServiceSchema;
const ACCOUNTS = 5;

describe("webhooks: GET …/deliveries pagination", function () {
  this.timeout(60000);
  let gc: GatewayCluster;
  let receiver: WebhookReceiver;
  let key: string;
  let hookId: string;

  before(async () => {
    receiver = await new WebhookReceiver().start();
    gc = new GatewayCluster({
      ...LONG_QR,
      rateLimitPerMinute: 100000,
      webhookPollMs: 50,
      webhookAllowPrivate: "127.0.0.1",
    });
    await gc.addGateway("gw");
    await gc.addWorker("w1");
    gc.cluster.node("wh1", [WebhooksService], { services: ["webhooks"] });
    await gc.start();
    await gc.gw.broker.waitForServices(["webhooks"], 10000);
    key = (await gc.createKey("dpages")).key;
    const hook = await gc.gw.call("POST", "/api/v1/webhooks", {
      key,
      body: { url: receiver.url, events: ["account.created"] },
    });
    assert.equal(hook.status, 201, String(hook.body));
    hookId = hook.json.id;
    for (let i = 0; i < ACCOUNTS; i++) {
      const res = await gc.gw.call("POST", "/api/v1/accounts", { key, body: { name: `d${i}` } });
      assert.equal(res.status, 201, String(res.body));
    }
    await waitFor(async () => (await deliveries()).json?.items?.length === ACCOUNTS, {
      what: `${ACCOUNTS} deliveries recorded`,
    });
  });
  after(async () => {
    await gc?.stop();
    await receiver?.stop();
  });

  const deliveries = (query = "") =>
    gc.gw.call("GET", `/api/v1/webhooks/${hookId}/deliveries${query}`, { key });
  const ids = (res: { json: { items: { id: string }[] } }) => res.json.items.map((d) => d.id);

  it("without limit or cursor: every delivery (up to 100), newest first, nextCursor null", async () => {
    const res = await deliveries();
    assert.equal(res.status, 200, String(res.body));
    assert.equal(res.json.items.length, ACCOUNTS);
    assert.equal(res.json.nextCursor, null);
    const created = res.json.items.map((d: { createdAt: string }) => Date.parse(d.createdAt));
    assert.deepEqual(
      created,
      [...created].sort((a, b) => b - a),
    );
  });

  it("limit=2: three pages, each delivery once and in the same order, the last with nextCursor null", async () => {
    const all = ids(await deliveries());
    const seen: string[] = [];
    let query = "?limit=2";
    for (let page = 1; ; page++) {
      const res = await deliveries(query);
      assert.equal(res.status, 200, String(res.body));
      assert.ok(res.json.items.length <= 2);
      seen.push(...ids(res));
      if (res.json.nextCursor === null) {
        assert.equal(page, 3);
        break;
      }
      assert.match(res.json.nextCursor, /^[A-Za-z0-9_-]+$/);
      query = `?limit=2&cursor=${res.json.nextCursor}`;
    }
    assert.deepEqual(seen, all);
  });

  it("pages combine with ?status", async () => {
    await waitFor(async () => (await deliveries("?status=delivered")).json.items.length === ACCOUNTS, {
      what: "every delivery delivered",
    });
    const first = await deliveries("?status=delivered&limit=3");
    assert.equal(first.json.items.length, 3);
    const rest = await deliveries(`?status=delivered&limit=3&cursor=${first.json.nextCursor}`);
    assert.equal(rest.json.items.length, ACCOUNTS - 3);
    assert.equal(rest.json.nextCursor, null);
    assert.deepEqual([...ids(first), ...ids(rest)], ids(await deliveries()));
  });

  it("a malformed limit or cursor → 422 VALIDATION_ERROR", async () => {
    for (const q of ["?limit=0", "?limit=abc", "?limit=5000", "?cursor=%24%24", "?cursor=bm90LWEtY3Vyc29y"]) {
      const res = await deliveries(q);
      assert.equal(res.status, 422, `${q}: ${res.body}`);
      assert.equal(res.json.type, "VALIDATION_ERROR");
    }
  });
});
