// Events are never lost to webhooks: with every webhooks node stopped, 1,000 account events are
// produced by the real account services (simulated engine) and wait in the event log; one webhooks
// node started afterwards delivers them all to a real local receiver, each once, in order per account.
import { strict as assert } from "node:assert";
import type { ServiceBroker, ServiceSchema } from "moleculer";
import AccountsService from "../../../services/accounts.service.ts";
import SessionService from "../../../services/session.service.ts";
import WebhooksSchema from "../../../services/webhooks.service.ts";
import type { AccountView } from "../../../src/accounts/types.ts";
import { eventIdOf } from "../../../src/webhooks/events.ts";
import { TestCluster } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";
import { WebhookReceiver } from "../webhooks/receiver.ts";
import { connectedAccount, LONG_QR, simulateMessage, wholeLog } from "./support.ts";

const WebhooksService = WebhooksSchema as unknown as ServiceSchema;
const PER_ACCOUNT = 500;

describe("events: webhooks catch up from the event log", function () {
  this.timeout(240000);
  let cluster: TestCluster;
  let receiver: WebhookReceiver;
  let gw: ServiceBroker;

  beforeEach(async () => {
    receiver = await new WebhookReceiver().start();
    cluster = new TestCluster(
      {
        webhookPollMs: 100,
        webhookBackoffBaseMs: 40,
        webhookBackoffMaxMs: 200,
        requestTimeoutMs: 30000,
        qr: LONG_QR,
      },
      "evwh",
    );
  });
  afterEach(async () => {
    await cluster.stop();
    await receiver.stop();
  });

  it("1,000 events produced with no webhooks node up are all delivered once one starts", async () => {
    gw = cluster.node("gw", [AccountsService as unknown as ServiceSchema]);
    cluster.node("w1", [SessionService as unknown as ServiceSchema]);
    const wh1 = cluster.node("wh1", [WebhooksService]);
    await cluster.start();
    await gw.waitForServices(["accounts", "session", "webhooks"], 15000);
    await gw.call("webhooks.create", { workspaceId: "ws1", url: receiver.url });
    const accounts: AccountView[] = [
      await connectedAccount(gw, "ws1", "a"),
      await connectedAccount(gw, "ws1", "b"),
    ];

    await wh1.stop();
    await waitFor(
      () => !gw.registry.getServiceList({ onlyAvailable: true }).some((s) => s.name === "webhooks"),
      {
        what: "no webhooks service left",
      },
    );
    const before = receiver.requests.length;
    await Promise.all(
      accounts.map(async (a) => {
        for (let i = 0; i < PER_ACCOUNT; i++) await simulateMessage(gw, "ws1", a.id, i);
      }),
    );
    const log = (await wholeLog(gw, "ws1")).filter((e) => e.event === "account.message");
    assert.equal(log.length, 2 * PER_ACCOUNT, "every message is in the log");
    assert.equal(receiver.requests.length, before, "nothing was delivered while no webhooks node ran");

    const wh2 = cluster.node("wh2", [WebhooksService]);
    await wh2.start();
    const messages = () => receiver.accepted.filter((r) => r.body.event === "account.message");
    await waitFor(() => messages().length >= 2 * PER_ACCOUNT, {
      what: `${2 * PER_ACCOUNT} messages delivered`,
      timeoutMs: 180000,
      intervalMs: 200,
    });

    const ids = receiver.accepted.map((r) => r.body.id as string);
    const twice = receiver.accepted.filter((r, i) => ids.indexOf(r.body.id) !== i);
    assert.deepEqual(
      twice.map(
        (r) => `${r.body.event} ${r.body.id} attempt ${String(r.headers["x-switchboard-delivery-attempt"])}`,
      ),
      [],
      "no event accepted twice",
    );
    for (const a of accounts) {
      const texts = messages()
        .filter((r) => r.body.accountId === a.id)
        .map((r) => r.body.data.text);
      assert.deepEqual(
        texts,
        Array.from({ length: PER_ACCOUNT }, (_, i) => `m${i}`),
        `${a.name}: every message, in order`,
      );
    }
    // The delivered ids are those of the logged events, and each body carries its cursor.
    const logged = new Map(
      log.map((e) => {
        const { cursor: _cursor, ...payload } = e.payload as Record<string, unknown>;
        return [eventIdOf(e.event, payload), e.cursor];
      }),
    );
    for (const r of messages()) assert.equal(r.body.data.cursor, logged.get(r.body.id));
  });
});
