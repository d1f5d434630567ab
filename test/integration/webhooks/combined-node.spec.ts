// One node running every service (the default SERVICES): the webhooks service hears the session's
// broadcasts as a local handler, which Moleculer's broadcast awaits. An account's pipeline awaits its
// QR broadcast, so webhook recording (which, for an unlogged QR, first drains the workspace's log up to
// the events heard before it) must not hold it: the account would stay on its QR screen while a busy workspace keeps draining.
// A gate in front of the log tail's drain stands in for that busy drain.
import { strict as assert } from "node:assert";
import type { ServiceBroker, ServiceSchema } from "moleculer";
import AccountsService from "../../../services/accounts.service.ts";
import SessionService from "../../../services/session.service.ts";
import WebhooksSchema from "../../../services/webhooks.service.ts";
import type { AccountView } from "../../../src/accounts/types.ts";
import type { LogTail } from "../../../src/webhooks/log-tail.ts";
import { TestCluster } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";
import { WebhookReceiver } from "./receiver.ts";

const WebhooksService = WebhooksSchema as unknown as ServiceSchema;

describe("webhooks: on a node that also runs the sessions", function () {
  this.timeout(30000);
  let cluster: TestCluster;
  let receiver: WebhookReceiver;
  let node: ServiceBroker;
  let openGate: () => void = () => undefined;

  before(async () => {
    receiver = await new WebhookReceiver().start();
    cluster = new TestCluster({ webhookPollMs: 50 }, "whall");
    node = cluster.node("all", [AccountsService, SessionService, WebhooksService]);
    await cluster.start();
    await node.waitForServices(["accounts", "session", "webhooks"], 10000);
  });
  after(async () => {
    openGate();
    await cluster?.stop();
    await receiver?.stop();
  });

  it("a QR broadcast does not wait for webhook recording: the account connects meanwhile", async () => {
    await node.call("webhooks.create", { workspaceId: "ws_all", url: receiver.url });
    const tail = (node.getLocalService("webhooks") as unknown as { tail: LogTail }).tail;
    const drain = tail.drain.bind(tail);
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    let held = 0;
    tail.drain = async (workspaceId: string) => {
      held++;
      await gate;
      return drain(workspaceId);
    };
    try {
      const account: AccountView = await node.call("accounts.create", {
        workspaceId: "ws_all",
        name: "busy",
      });
      const statusOf = async () =>
        ((await node.call("accounts.get", { workspaceId: "ws_all", accountId: account.id })) as AccountView)
          .status;
      await waitFor(async () => (await statusOf()) === "qr_scanning", { what: "qr_scanning" });
      await waitFor(() => held > 0, { what: "the QR's recording waiting on the drain" });
      await node.call("accounts.simulate", {
        workspaceId: "ws_all",
        accountId: account.id,
        action: "scan",
        phoneNumber: "4915112345678",
      });
      await waitFor(async () => (await statusOf()) === "connected", {
        what: "the account connected while webhook recording waits",
        timeoutMs: 5000,
      });
    } finally {
      openGate();
      tail.drain = drain;
    }
    await waitFor(() => receiver.accepted.some((r) => r.body.data?.status === "connected"), {
      what: "the QR and the statuses after it delivered once recording went on",
    });
    // In the order they happened: the QR before the statuses the scan brought, although the log held
    // those by the time the QR's recording went on.
    const delivered = receiver.accepted.map((r) => r.body.data?.status ?? r.body.event);
    const qr = delivered.indexOf("account.qr");
    assert.ok(qr >= 0 && qr < delivered.indexOf("connected"), delivered.join(", "));
  });
});
