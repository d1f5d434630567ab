// The webhooks REST routes through the real gateway (src/gateway/routes.ts → webhooks.*): workspace
// scoping by key, validation, secret shown once, and a dead delivery visible over REST.
import { strict as assert } from "node:assert";
import type { ServiceSchema } from "moleculer";
import WebhooksSchema from "../../../services/webhooks.service.ts";
import { GatewayCluster } from "../api/helpers.ts";
import { landThenLoseAnswer } from "../../support/answer-lost.ts";
import { waitFor } from "../../support/wait.ts";
import { WebhookReceiver } from "./receiver.ts";

const WebhooksService = WebhooksSchema as unknown as ServiceSchema;

describe("webhooks over REST", function () {
  this.timeout(30000);
  let gc: GatewayCluster;
  let receiver: WebhookReceiver;
  let keyA: string;
  let keyB: string;

  before(async () => {
    receiver = await new WebhookReceiver().start();
    gc = new GatewayCluster({
      webhookPollMs: 50,
      webhookBackoffBaseMs: 20,
      webhookBackoffMaxMs: 50,
      webhookMaxAttempts: 2,
    });
    await gc.addGateway("gw");
    await gc.addWorker("w1");
    gc.cluster.node("wh1", [WebhooksService], { services: ["webhooks"] });
    await gc.start();
    await gc.gw.broker.waitForServices(["webhooks"], 10000);
    keyA = (await gc.createKey("ws_a")).key;
    keyB = (await gc.createKey("ws_b")).key;
  });
  after(async () => {
    await gc?.stop();
    await receiver?.stop();
  });

  it("create (201, secret once) / list / get / delete, scoped to the key's workspace", async () => {
    const { gw } = gc;
    const bad = await gw.call("POST", "/api/v1/webhooks", { key: keyA, body: { url: "file:///etc/passwd" } });
    assert.equal(bad.status, 422, String(bad.body));
    const badEvents = await gw.call("POST", "/api/v1/webhooks", {
      key: keyA,
      body: { url: receiver.url, events: ["account.bogus"] },
    });
    assert.equal(badEvents.status, 422);

    const created = await gw.call("POST", "/api/v1/webhooks", {
      key: keyA,
      body: { url: receiver.url, events: ["account.status"], workspaceId: "ws_b" },
    });
    assert.equal(created.status, 201, String(created.body));
    assert.equal(created.json.workspaceId, "ws_a", "a workspace key cannot choose the workspace");
    assert.match(created.json.secret, /^whsec_/);
    assert.equal(created.headers.location, `/api/v1/webhooks/${created.json.id}`);
    const id = created.json.id;

    const got = await gw.call("GET", `/api/v1/webhooks/${id}`, { key: keyA });
    assert.equal(got.status, 200);
    assert.equal(got.json.secret, undefined);
    assert.deepEqual(got.json.events, ["account.status"]);
    const list = await gw.call("GET", "/api/v1/webhooks", { key: keyA });
    assert.deepEqual(
      list.json.items.map((e: any) => e.id),
      [id],
    );
    assert.deepEqual((await gw.call("GET", "/api/v1/webhooks", { key: keyB })).json.items, []);
    assert.equal((await gw.call("GET", `/api/v1/webhooks/${id}`, { key: keyB })).status, 404);
    assert.equal((await gw.call("DELETE", `/api/v1/webhooks/${id}`, { key: keyB })).status, 404);
    assert.equal((await gw.call("GET", `/api/v1/webhooks/${id}/deliveries`, { key: keyB })).status, 404);

    assert.equal((await gw.call("DELETE", `/api/v1/webhooks/${id}`, { key: keyA })).status, 200);
    assert.equal((await gw.call("GET", `/api/v1/webhooks/${id}`, { key: keyA })).status, 404);
  });

  it("a dead delivery of a real account event is visible at GET /webhooks/:id/deliveries?status=dead", async () => {
    const { gw } = gc;
    receiver.respond = () => 410;
    const created = await gw.call("POST", "/api/v1/webhooks", {
      key: keyA,
      body: { url: receiver.url, events: ["account.created"] },
    });
    const hook = created.json;
    const account = await gw.call("POST", "/api/v1/accounts", { key: keyA, body: { name: "dead-letter" } });
    assert.equal(account.status, 201, String(account.body));

    const dead = await waitFor(
      async () => {
        const res = await gw.call("GET", `/api/v1/webhooks/${hook.id}/deliveries?status=dead`, { key: keyA });
        return res.status === 200 && res.json.items.length === 1 ? res.json.items[0] : undefined;
      },
      { what: "a dead delivery over REST" },
    );
    assert.equal(dead.event, "account.created");
    assert.equal(dead.accountId, account.json.id);
    assert.equal(dead.attempts, 2);
    assert.equal(dead.lastStatusCode, 410);
    assert.match(dead.lastError, /HTTP 410/);
    const pending = await gw.call("GET", `/api/v1/webhooks/${hook.id}/deliveries?status=pending`, {
      key: keyA,
    });
    assert.deepEqual(pending.json.items, []);
    const wrong = await gw.call("GET", `/api/v1/webhooks/${hook.id}/deliveries?status=lost`, { key: keyA });
    assert.equal(wrong.status, 422);
  });

  /** A new endpoint of ws_a taking account.created, and the delivery of a new account's, dead (its
   * receiver answering 410); with the endpoint's deliveries of a status and a resend of one. */
  async function deadDelivery(name: string) {
    const { gw } = gc;
    receiver.respond = () => 410;
    const hook = (
      await gw.call("POST", "/api/v1/webhooks", {
        key: keyA,
        body: { url: receiver.url, events: ["account.created"] },
      })
    ).json;
    const account = (await gw.call("POST", "/api/v1/accounts", { key: keyA, body: { name } })).json;
    const deliveries = (status: string) =>
      gw.call("GET", `/api/v1/webhooks/${hook.id}/deliveries?status=${status}`, { key: keyA });
    const dead = await waitFor(
      async () => (await deliveries("dead")).json.items.find((d: any) => d.accountId === account.id),
      { what: "the delivery dead" },
    );
    const resend = (deliveryId: string, key = keyA) =>
      gw.call("POST", `/api/v1/webhooks/${hook.id}/deliveries/${encodeURIComponent(deliveryId)}/resend`, {
        key,
      });
    const delivered = () =>
      waitFor(async () => (await deliveries("delivered")).json.items.find((d: any) => d.id === dead.id), {
        what: "the delivery sent again and delivered",
      });
    return { dead, resend, delivered };
  }

  it("a dead delivery sent again (POST …/deliveries/:deliveryId/resend) is delivered; only a dead one is", async () => {
    try {
      const { dead, resend, delivered } = await deadDelivery("resent");
      // Another workspace's key does not see the endpoint; a delivery the endpoint never had is 404.
      assert.equal((await resend(dead.id, keyB)).status, 404);
      const unknown = await resend(dead.id.replace(/\|\d{12}$/, "|000000009999"));
      assert.equal(unknown.status, 404, String(unknown.body));
      assert.equal(unknown.json.type, "NOT_FOUND");

      receiver.respond = () => 200;
      const sentBefore = receiver.requests.length;
      const again = await resend(dead.id);
      assert.equal(again.status, 200, String(again.body));
      assert.equal(again.json.id, dead.id);
      assert.equal(again.json.status, "pending");
      assert.equal(again.json.attempts, 0);
      assert.equal((await delivered()).attempts, 1);
      const got = receiver.requests.slice(sentBefore).filter((r) => r.status === 200);
      assert.equal(got.length, 1, "sent once");
      assert.equal(got[0].body.id, dead.eventId);

      const twice = await resend(dead.id);
      assert.equal(twice.status, 409);
      assert.equal(twice.json.type, "INVALID_STATE");
      assert.deepEqual(twice.json.data, { deliveryId: dead.id, status: "delivered" });
    } finally {
      receiver.respond = () => 200;
    }
  });

  it("a resend whose write landed but whose answer was lost is answered as sent again, not 409", async () => {
    const repo = (gc.cluster.brokers.find((b) => b.nodeID === "wh1")!.getLocalService("webhooks") as any)
      .outbox;
    let restore = () => undefined as void;
    try {
      const { dead, resend, delivered } = await deadDelivery("lost");
      receiver.respond = () => 200;
      restore = landThenLoseAnswer(repo.col, "findOneAndUpdate");
      const again = await resend(dead.id);
      assert.equal(again.status, 200, String(again.body));
      assert.equal(again.json.id, dead.id);
      await delivered();
    } finally {
      restore();
      receiver.respond = () => 200;
    }
  });

  it("the OpenAPI document describes the webhook routes", async () => {
    const doc = (await gc.gw.call("GET", "/api/openapi.json")).json;
    const create = doc.paths["/api/v1/webhooks"].post;
    assert.equal(create["x-action"], "webhooks.create");
    const events = create.requestBody.content["application/json"].schema.properties.events;
    assert.equal(events.type, "array");
    assert.ok(events.items.enum.includes("account.status"));
    assert.ok(doc.paths["/api/v1/webhooks/{id}/deliveries"].get);
  });
});
