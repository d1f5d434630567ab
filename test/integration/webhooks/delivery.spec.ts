// Webhooks for real: brokers over the real NATS, the outbox in the real MongoDB-wire server (FerretDB),
// deliveries to a real local HTTP receiver. Account events are broadcast by a plain "publisher" broker
// exactly as the session runtime broadcasts them (the contract of src/accounts/types.ts).
import { strict as assert } from "node:assert";
import { createServer } from "node:http";
import type { ServiceBroker, ServiceSchema } from "moleculer";
import WebhooksSchema from "../../../services/webhooks.service.ts";
import type { AccountStatusEvent } from "../../../src/accounts/types.ts";
import { eventIdOf } from "../../../src/webhooks/events.ts";
import {
  HEADER_ATTEMPT,
  HEADER_EVENT,
  HEADER_EVENT_ID,
  HEADER_SIGNATURE,
  HEADER_TIMESTAMP,
} from "../../../src/webhooks/http-delivery.ts";
import { verify } from "../../../src/webhooks/signing.ts";
import type { DeliveryView, EndpointView } from "../../../src/webhooks/types.ts";
import { TestCluster } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";
import { FAST, statusEvent } from "./fixtures.ts";
import { WebhookReceiver } from "./receiver.ts";

const WebhooksService = WebhooksSchema as unknown as ServiceSchema;

const header = (h: Record<string, unknown>, name: string) => String(h[name.toLowerCase()]);

describe("webhooks: signed, retried, ordered delivery from the outbox", function () {
  this.timeout(30000);
  let cluster: TestCluster;
  let pub: ServiceBroker;
  let receiver: WebhookReceiver;

  async function createEndpoint(
    workspaceId: string,
    extra: Record<string, unknown> = {},
  ): Promise<EndpointView> {
    return pub.call("webhooks.create", { workspaceId, url: receiver.url, ...extra });
  }
  async function deliveries(workspaceId: string, id: string, status?: string): Promise<DeliveryView[]> {
    const res: { items: DeliveryView[] } = await pub.call("webhooks.deliveries", { workspaceId, id, status });
    return res.items;
  }

  beforeEach(async () => {
    receiver = await new WebhookReceiver().start();
    cluster = new TestCluster(FAST, "wh");
  });
  afterEach(async () => {
    await cluster.stop();
    await receiver.stop();
  });

  it("manages endpoints per workspace: http(s) only, secret shown once, other workspaces see 404", async () => {
    cluster.node("wh1", [WebhooksService]);
    pub = cluster.node("pub", []);
    await cluster.start();
    await pub.waitForServices(["webhooks"], 15000);

    await assert.rejects(pub.call("webhooks.create", { workspaceId: "ws1", url: "ftp://example.com/x" }), {
      code: 422,
    });
    await assert.rejects(pub.call("webhooks.create", { workspaceId: "ws1", url: "not a url" }), {
      code: 422,
    });
    await assert.rejects(
      pub.call("webhooks.create", { workspaceId: "ws1", url: receiver.url, events: ["account.nope"] }),
      { code: 422 },
    );
    const created = await createEndpoint("ws1", { events: ["account.status"] });
    assert.match(created.secret!, /^whsec_/);
    assert.deepEqual(created.events, ["account.status"]);
    const own = await createEndpoint("ws1", { secret: "my-own-secret-of-16+" });
    assert.equal(own.secret, "my-own-secret-of-16+");

    const got: EndpointView = await pub.call("webhooks.get", { workspaceId: "ws1", id: created.id });
    assert.equal(got.secret, undefined);
    const list: { items: EndpointView[] } = await pub.call("webhooks.list", { workspaceId: "ws1" });
    assert.deepEqual(list.items.map((e) => e.id).sort(), [created.id, own.id].sort());
    assert.ok(list.items.every((e) => e.secret === undefined));
    await assert.rejects(pub.call("webhooks.get", { workspaceId: "ws2", id: created.id }), { code: 404 });
    await assert.rejects(pub.call("webhooks.remove", { workspaceId: "ws2", id: created.id }), { code: 404 });

    await pub.call("webhooks.remove", { workspaceId: "ws1", id: own.id });
    const after: { items: EndpointView[] } = await pub.call("webhooks.list", { workspaceId: "ws1" });
    assert.deepEqual(
      after.items.map((e) => e.id),
      [created.id],
    );
  });

  it("POSTs the event with a signature that verifies over timestamp + body", async () => {
    cluster.node("wh1", [WebhooksService]);
    pub = cluster.node("pub", []);
    await cluster.start();
    await pub.waitForServices(["webhooks"], 15000);
    const endpoint = await createEndpoint("ws1");
    const other = await pub.call<EndpointView, object>("webhooks.create", {
      workspaceId: "ws1",
      url: receiver.url,
      events: ["account.qr"],
    });

    const ev = statusEvent("ws1", "acc_sig", "qr_scanning");
    await pub.broadcast("account.status", ev);
    await pub.broadcast("account.status", statusEvent("ws2", "acc_elsewhere", "qr_scanning"));

    const [req] = await waitFor(() => (receiver.accepted.length >= 1 ? receiver.accepted : undefined), {
      what: "a delivery",
    });
    assert.equal(header(req.headers, HEADER_EVENT), "account.status");
    assert.equal(header(req.headers, HEADER_EVENT_ID), eventIdOf("account.status", ev));
    assert.equal(header(req.headers, HEADER_ATTEMPT), "1");
    const ts = header(req.headers, HEADER_TIMESTAMP);
    const sig = header(req.headers, HEADER_SIGNATURE);
    assert.match(sig, /^sha256=[0-9a-f]{64}$/);
    assert.ok(verify(endpoint.secret!, ts, req.raw, sig), "signature must verify with the endpoint secret");
    assert.ok(!verify(other.secret!, ts, req.raw, sig), "another secret must not verify");
    assert.ok(!verify(endpoint.secret!, ts, req.raw.replace("qr_scanning", "connected"), sig));
    assert.equal(req.body.id, eventIdOf("account.status", ev));
    assert.equal(req.body.accountId, "acc_sig");
    assert.deepEqual(req.body.data, ev);

    const rows = await waitFor(
      async () => {
        const items = await deliveries("ws1", endpoint.id);
        return items.length === 1 && items[0].status === "delivered" ? items : undefined;
      },
      { what: "the outbox row to be delivered" },
    );
    assert.equal(rows[0].attempts, 1);
    // Filtered out (only account.qr) and other workspaces: nothing recorded, nothing sent.
    assert.deepEqual(await deliveries("ws1", other.id), []);
    await new Promise((r) => setTimeout(r, 200)); // the only fixed wait: proving that nothing else arrives
    assert.equal(receiver.requests.length, 1);
  });

  it("a receiver failing the first 3 times gets the event on the 4th attempt", async () => {
    cluster.node("wh1", [WebhooksService]);
    pub = cluster.node("pub", []);
    await cluster.start();
    await pub.waitForServices(["webhooks"], 15000);
    const endpoint = await createEndpoint("ws1");
    receiver.respond = (_req, i) => (i < 3 ? 503 : 204);

    const ev = statusEvent("ws1", "acc_retry", "connected");
    await pub.broadcast("account.status", ev);
    await waitFor(() => receiver.accepted.length === 1, { what: "the 4th attempt to be accepted" });

    assert.deepEqual(
      receiver.requests.map((r) => [header(r.headers, HEADER_ATTEMPT), r.status]),
      [
        ["1", 503],
        ["2", 503],
        ["3", 503],
        ["4", 204],
      ],
    );
    const ids = new Set(receiver.requests.map((r) => header(r.headers, HEADER_EVENT_ID)));
    assert.deepEqual([...ids], [eventIdOf("account.status", ev)]);
    // Backoff grows between attempts (40 ms base, doubled, half jittered).
    const gaps = receiver.requests.slice(1).map((r, i) => r.at - receiver.requests[i].at);
    assert.ok(gaps[0] >= 15, `first retry after ${gaps[0]} ms`);
    const [row] = await waitFor(async () => {
      const items = await deliveries("ws1", endpoint.id, "delivered");
      return items.length === 1 ? items : undefined;
    });
    assert.equal(row.attempts, 4);
  });

  it("a workspace with hanging receivers holds at most its share of the delivery slots", async () => {
    // 2 slots on the node, 1 per workspace: 6 queues of a slow tenant leave room for another's. (An
    // attempt starts only well within its lease: the lease outlives the 8 s timeout.)
    cluster = new TestCluster(
      {
        ...FAST,
        webhookTimeoutMs: 8000,
        webhookLeaseTtlMs: 20000,
        webhookConcurrency: 2,
        webhookWorkspaceConcurrency: 1,
      },
      "wh",
    );
    cluster.node("wh1", [WebhooksService]);
    pub = cluster.node("pub", []);
    await cluster.start();
    await pub.waitForServices(["webhooks"], 15000);
    const held = new Set<import("node:http").ServerResponse>();
    const hanging = createServer((_req, res) => void held.add(res));
    await new Promise<void>((resolve) => hanging.listen(0, "127.0.0.1", resolve));
    try {
      const port = (hanging.address() as import("node:net").AddressInfo).port;
      await createEndpoint("ws_slow", { url: `http://127.0.0.1:${port}/hook` });
      await createEndpoint("ws_fast");
      for (let i = 0; i < 6; i++)
        await pub.broadcast("account.status", statusEvent("ws_slow", `acc_slow${i}`, "connected"));
      await waitFor(() => held.size === 1, { what: "the slow workspace to hold its slot" });
      const sentAt = Date.now();
      await pub.broadcast("account.status", statusEvent("ws_fast", "acc_fast", "connected"));
      await waitFor(() => receiver.accepted.length === 1, {
        what: "the other workspace's event, delivered meanwhile",
      });
      assert.ok(
        Date.now() - sentAt < 4000,
        `delivered ${Date.now() - sentAt} ms after (the slow ones hang 8 s)`,
      );
      assert.equal(held.size, 1, "the slow workspace never had more than its slot");
    } finally {
      for (const res of held) res.destroy();
      hanging.closeAllConnections();
      await new Promise<void>((resolve) => hanging.close(() => resolve()));
    }
  });

  it("a receiver down across a restart of the webhooks node still gets the event", async () => {
    // Enough attempts to outlast the outage.
    const wh1 = cluster.node("wh1", [WebhooksService], { webhookMaxAttempts: 1000 });
    pub = cluster.node("pub", []);
    await cluster.start();
    await pub.waitForServices(["webhooks"], 15000);
    const endpoint = await createEndpoint("ws1");
    await receiver.stop();

    const ev = statusEvent("ws1", "acc_restart", "connected");
    await pub.broadcast("account.status", ev);
    // Recorded and tried (connection refused) while the receiver is down.
    await waitFor(
      async () => {
        const [row] = await deliveries("ws1", endpoint.id);
        return (
          row && row.status === "pending" && row.attempts >= 1 && /request failed/.test(row.lastError ?? "")
        );
      },
      { what: "a failed attempt recorded in the outbox" },
    );

    await wh1.stop();
    cluster.brokers.splice(cluster.brokers.indexOf(wh1), 1);
    // A new process of the same node; the receiver comes back only afterwards.
    cluster.node("wh1", [WebhooksService], { webhookMaxAttempts: 1000 });
    await cluster.start();
    await pub.waitForServices(["webhooks"], 15000);
    await receiver.start();

    await waitFor(() => receiver.accepted.length === 1, { what: "delivery after the restart" });
    const [req] = receiver.accepted;
    assert.equal(header(req.headers, HEADER_EVENT_ID), eventIdOf("account.status", ev));
    assert.ok(Number(header(req.headers, HEADER_ATTEMPT)) >= 2);
    assert.ok(
      verify(
        endpoint.secret!,
        header(req.headers, HEADER_TIMESTAMP),
        req.raw,
        header(req.headers, HEADER_SIGNATURE),
      ),
    );
    await waitFor(async () => (await deliveries("ws1", endpoint.id, "delivered")).length === 1);
  });

  it("a dead receiver ends with the event marked dead and visible", async () => {
    cluster.node("wh1", [WebhooksService], { webhookMaxAttempts: 3 });
    pub = cluster.node("pub", []);
    await cluster.start();
    await pub.waitForServices(["webhooks"], 15000);
    const endpoint = await createEndpoint("ws1");
    receiver.respond = () => 500;

    const ev = statusEvent("ws1", "acc_dead", "failed");
    await pub.broadcast("account.status", ev);
    const [dead] = await waitFor(
      async () => {
        const items = await deliveries("ws1", endpoint.id, "dead");
        return items.length === 1 ? items : undefined;
      },
      { what: "the event to be marked dead" },
    );
    assert.equal(dead.eventId, eventIdOf("account.status", ev));
    assert.equal(dead.attempts, 3);
    assert.equal(dead.lastStatusCode, 500);
    assert.match(dead.lastError!, /HTTP 500/);
    assert.equal(receiver.requests.length, 3);
    assert.deepEqual(await deliveries("ws1", endpoint.id, "pending"), []);

    // The next event of the account is not held back by the dead one.
    receiver.respond = () => 200;
    await pub.broadcast("account.status", statusEvent("ws1", "acc_dead", "initializing"));
    await waitFor(() => receiver.accepted.length === 1, { what: "the next event after a dead one" });
  });

  it("two webhooks nodes record each event once and deliver each account's events in order", async () => {
    cluster.node("wh1", [WebhooksService]);
    cluster.node("wh2", [WebhooksService]);
    pub = cluster.node("pub", []);
    await cluster.start();
    await pub.waitForServices(["webhooks"], 15000);
    const endpoint = await createEndpoint("ws1");
    // Every 3rd request fails: retries must not let a later event of the account overtake.
    receiver.respond = (_req, i) => (i % 3 === 1 ? 500 : 200);

    const accounts = ["acc_a", "acc_b"];
    const sent: Record<string, string[]> = { acc_a: [], acc_b: [] };
    const statuses: AccountStatusEvent["status"][] = [
      "initializing",
      "qr_scanning",
      "authenticated",
      "connected",
      "disconnected",
    ];
    for (let i = 0; i < 10; i++) {
      for (const acc of accounts) {
        const ev = statusEvent("ws1", acc, statuses[i % statuses.length]);
        sent[acc].push(eventIdOf("account.status", ev));
        await pub.broadcast("account.status", ev);
      }
    }

    await waitFor(() => receiver.accepted.length >= 20, { what: "20 deliveries", timeoutMs: 20000 });
    for (const acc of accounts) {
      const all = receiver.requests.filter((r) => r.body.accountId === acc);
      const positions = all.map((r) => sent[acc].indexOf(header(r.headers, HEADER_EVENT_ID)));
      // Every request (failed ones included) is for the head of the queue: never ahead of an earlier event.
      assert.deepEqual(
        positions,
        [...positions].sort((a, b) => a - b),
        `${acc} order`,
      );
      const accepted = all.filter((r) => r.status < 300).map((r) => header(r.headers, HEADER_EVENT_ID));
      assert.deepEqual(accepted, sent[acc], `${acc}: each event accepted once, in order`);
    }
    // Both nodes received every broadcast; the outbox holds one row per event.
    const rows = await deliveries("ws1", endpoint.id);
    assert.equal(rows.length, 20);
    for (const acc of accounts) {
      const seqs = rows
        .filter((r) => r.accountId === acc)
        .sort((a, b) => a.seq - b.seq)
        .map((r) => r.eventId);
      assert.deepEqual(seqs, sent[acc], `${acc}: outbox seq follows the broadcast order`);
    }
  });

  it("when the delivering node stops mid-queue, the other takes over and the order holds", async () => {
    const nodes = [cluster.node("wh1", [WebhooksService]), cluster.node("wh2", [WebhooksService])];
    pub = cluster.node("pub", []);
    await cluster.start();
    await pub.waitForServices(["webhooks"], 15000);
    await waitFor(
      () =>
        pub.registry.getServiceList({ onlyAvailable: true }).filter((s) => s.name === "webhooks").length ===
        2,
    );
    const endpoint = await createEndpoint("ws1");
    // Slow acceptance so that the queue is still long when the holder goes.
    receiver.respond = (_req, i) => (i % 2 === 0 ? 503 : 200);

    const sent: string[] = [];
    for (let i = 0; i < 12; i++) {
      const ev = statusEvent("ws1", "acc_handover", i % 2 ? "connected" : "disconnected");
      sent.push(eventIdOf("account.status", ev));
      await pub.broadcast("account.status", ev);
    }
    await waitFor(() => receiver.accepted.length >= 3, { what: "the first deliveries" });
    const holder = await waitFor(() =>
      nodes.find((b) => (b.getLocalService("webhooks") as any).loop.heldEndpoints().includes(endpoint.id)),
    );
    await holder.stop();
    cluster.brokers.splice(cluster.brokers.indexOf(holder), 1);

    await waitFor(() => new Set(receiver.accepted.map((r) => r.body.id)).size === sent.length, {
      what: "every event after the hand-over",
      timeoutMs: 20000,
    });
    // At least once: an attempt cut off by the stop may be sent again, right after itself; never out of order.
    const accepted = receiver.accepted.map((r) => r.body.id as string);
    const collapsed = accepted.filter((id, i) => id !== accepted[i - 1]);
    assert.deepEqual(collapsed, sent);
    const positions = receiver.requests.map((r) => sent.indexOf(r.body.id));
    assert.deepEqual(
      positions,
      [...positions].sort((a, b) => a - b),
      "no request ever ahead of an earlier event",
    );
  });
});
