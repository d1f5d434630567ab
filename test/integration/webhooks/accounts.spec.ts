// Webhooks fed by the real account services: accounts + session (simulated engine) broadcast the
// lifecycle, two webhooks nodes record it, one delivers it to a real receiver, in the account's order.
import { strict as assert } from "node:assert";
import type { ServiceBroker, ServiceSchema } from "moleculer";
import AccountsService from "../../../services/accounts.service.ts";
import SessionService from "../../../services/session.service.ts";
import WebhooksSchema from "../../../services/webhooks.service.ts";
import type { AccountView } from "../../../src/accounts/types.ts";
import { HEADER_EVENT, HEADER_SIGNATURE, HEADER_TIMESTAMP } from "../../../src/webhooks/http-delivery.ts";
import { verify } from "../../../src/webhooks/signing.ts";
import type { DeliveryView, EndpointView } from "../../../src/webhooks/types.ts";
import { TestCluster } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";
import { WebhookReceiver } from "./receiver.ts";

const WebhooksService = WebhooksSchema as unknown as ServiceSchema;

describe("webhooks: account lifecycle from the account services", function () {
  this.timeout(30000);
  let cluster: TestCluster;
  let receiver: WebhookReceiver;
  let gw: ServiceBroker;
  const statusSeenByBroker: Record<string, string[]> = {};

  before(async () => {
    receiver = await new WebhookReceiver().start();
    cluster = new TestCluster(
      { webhookPollMs: 50, webhookBackoffBaseMs: 40, webhookBackoffMaxMs: 200 },
      "whacc",
    );
    const recorder: ServiceSchema = {
      name: "recorder",
      events: {
        "account.status"(ctx: any) {
          (statusSeenByBroker[ctx.params.accountId] ??= []).push(ctx.params.status);
        },
      },
    };
    gw = cluster.node("gw", [AccountsService, WebhooksService, recorder]);
    cluster.node("w1", [SessionService, WebhooksService]);
    await cluster.start();
    await gw.waitForServices(["accounts", "session", "webhooks"], 10000);
  });
  after(async () => {
    await cluster?.stop();
    await receiver?.stop();
  });

  it("delivers created and every status of an account, signed, in the order they happened", async () => {
    const endpoint: EndpointView = await gw.call("webhooks.create", {
      workspaceId: "ws_a",
      url: receiver.url,
      events: ["account.created", "account.status"],
    });
    // The first delivery of each event fails once: retries must keep the order.
    const failedOnce = new Set<string>();
    receiver.respond = (req) => {
      if (failedOnce.has(req.body.id)) return 200;
      failedOnce.add(req.body.id);
      return 502;
    };

    const account: AccountView = await gw.call("accounts.create", { workspaceId: "ws_a", name: "one" });
    await waitFor(
      async () =>
        ((await gw.call("accounts.get", { workspaceId: "ws_a", accountId: account.id })) as AccountView)
          .status === "qr_scanning",
      {
        what: "qr_scanning",
      },
    );
    await gw.call("accounts.simulate", {
      workspaceId: "ws_a",
      accountId: account.id,
      action: "scan",
      phoneNumber: "4915112345678",
    });
    await waitFor(() => receiver.accepted.some((r) => r.body.data.status === "connected"), {
      what: "the connected status delivered",
    });

    const accepted = receiver.accepted.filter((r) => r.body.accountId === account.id);
    for (const r of accepted) {
      assert.ok(
        verify(
          endpoint.secret!,
          String(r.headers[HEADER_TIMESTAMP.toLowerCase()]),
          r.raw,
          String(r.headers[HEADER_SIGNATURE.toLowerCase()]),
        ),
      );
    }
    const statuses = accepted
      .filter((r) => r.headers[HEADER_EVENT.toLowerCase()] === "account.status")
      .map((r) => r.body.data.status);
    assert.deepEqual(
      statuses,
      statusSeenByBroker[account.id],
      "statuses delivered in the order they were broadcast",
    );
    assert.deepEqual(statuses.slice(-3), ["qr_scanning", "authenticated", "connected"]);
    assert.equal(accepted.filter((r) => r.body.event === "account.created").length, 1);
    assert.equal(new Set(accepted.map((r) => r.body.id)).size, accepted.length, "each event accepted once");
    // account.qr was not subscribed: never sent.
    assert.ok(receiver.requests.every((r) => r.body.event !== "account.qr"));

    // The outbox agrees: each accepted event is a delivered row, sent twice (502, then 200).
    const acceptedIds = new Set(accepted.map((r) => r.body.id));
    // (The receiver answers before the outbox row is marked.)
    const rows = await waitFor(async () => {
      const { items }: { items: DeliveryView[] } = await gw.call("webhooks.deliveries", {
        workspaceId: "ws_a",
        id: endpoint.id,
      });
      const mine = items.filter((d) => acceptedIds.has(d.eventId));
      return mine.every((d) => d.status === "delivered") ? mine : undefined;
    });
    assert.equal(rows.length, accepted.length);
    assert.deepEqual(
      rows
        .filter((d) => d.status !== "delivered" || d.attempts !== 2)
        .map((d) => [d.event, d.status, d.attempts]),
      [],
      "every accepted event delivered on its 2nd attempt",
    );
  });

  it("delivers the receipts of a sent message (account.message_ack), in order", async () => {
    await gw.call("webhooks.create", {
      workspaceId: "ws_acks",
      url: receiver.url,
      events: ["account.message_ack"],
    });
    receiver.respond = () => 200;
    const account: AccountView = await gw.call("accounts.create", { workspaceId: "ws_acks", name: "acks" });
    const statusOf = async () =>
      ((await gw.call("accounts.get", { workspaceId: "ws_acks", accountId: account.id })) as AccountView)
        .status;
    await waitFor(async () => (await statusOf()) === "qr_scanning", { what: "qr_scanning" });
    await gw.call("accounts.simulate", {
      workspaceId: "ws_acks",
      accountId: account.id,
      action: "scan",
      phoneNumber: "4915112345679",
    });
    await waitFor(async () => (await statusOf()) === "connected", { what: "connected" });
    const sent: { id: string } = await gw.call("accounts.sendMessage", {
      workspaceId: "ws_acks",
      accountId: account.id,
      to: "4915100000009",
      text: "receipts please",
    });
    const acks = () =>
      receiver.accepted
        .filter((r) => r.body.event === "account.message_ack" && r.body.data.messageId === sent.id)
        .map((r) => r.body.data.status);
    await waitFor(() => acks().length === 3, { what: "three receipts delivered", timeoutMs: 15000 });
    assert.deepEqual(acks(), ["sent", "delivered", "read"]);
  });
});
