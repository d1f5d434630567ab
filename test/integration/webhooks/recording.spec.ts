// Who records a workspace's events in the outbox (src/webhooks/recorder-slots.ts), for real: two
// webhooks nodes over NATS, the event log and the outbox in FerretDB, events appended to the log and
// broadcast as the session runtime does. One node records the workspace; when it stops in the middle of
// a stream, the other picks up at the stored position: nothing lost, nothing recorded twice, in order.
import { strict as assert } from "node:assert";
import { MongoClient } from "mongodb";
import type { ServiceBroker, ServiceSchema } from "moleculer";
import WebhooksSchema from "../../../services/webhooks.service.ts";
import { loggingPublisher, publishVia, type Broadcast } from "../../../src/session/event-publisher.ts";
import { EventsRepo } from "../../../src/store/events-repo.ts";
import type { OutboxDoc } from "../../../src/store/webhook-docs.ts";
import { OUTBOX_COLLECTION } from "../../../src/store/webhook-outbox-repo.ts";
import { RECORDER_SLOTS, type RecorderSlots } from "../../../src/webhooks/recorder-slots.ts";
import { eventIdOf } from "../../../src/webhooks/events.ts";
import type { EndpointView } from "../../../src/webhooks/types.ts";
import { TestCluster } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";
import { FAST, statusEvent } from "./fixtures.ts";
import { WebhookReceiver } from "./receiver.ts";

const WebhooksService = WebhooksSchema as unknown as ServiceSchema;
const slotsOf = (b: ServiceBroker) =>
  (b.getLocalService("webhooks") as unknown as { slots: RecorderSlots }).slots;

describe("webhooks: one recorder per workspace", function () {
  this.timeout(30000);
  let cluster: TestCluster;
  let receiver: WebhookReceiver;
  let client: MongoClient;

  beforeEach(async () => {
    receiver = await new WebhookReceiver().start();
    cluster = new TestCluster(FAST, "whrec");
    client = await MongoClient.connect(cluster.mongoUrl);
  });
  afterEach(async () => {
    await cluster.stop();
    await receiver.stop();
    await client.close();
  });

  it("the other node records what follows when the recorder stops mid-stream: each event once, in order", async () => {
    const nodes = [cluster.node("wh1", [WebhooksService]), cluster.node("wh2", [WebhooksService])];
    const pub = cluster.node("pub", []);
    await cluster.start();
    await waitFor(() => nodes.every((b) => slotsOf(b)?.heldSlots().length === RECORDER_SLOTS / 2), {
      what: "the recorder slots to split between the two nodes",
    });
    const endpoint: EndpointView = await pub.call("webhooks.create", {
      workspaceId: "ws1",
      url: receiver.url,
    });
    const broadcast: Broadcast = (event, payload) => pub.broadcast(event, payload);
    const publish = publishVia(loggingPublisher(new EventsRepo(client.db()), broadcast, console));
    const sent: string[] = [];
    const send = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const ev = statusEvent("ws1", "acc_rec", i % 2 ? "connected" : "disconnected");
        sent.push(eventIdOf("account.status", ev));
        await publish("account.status", ev);
      }
    };

    await send(10);
    await waitFor(() => receiver.accepted.length >= 10, { what: "the first 10 deliveries" });
    const recorder = nodes.find((b) => slotsOf(b).holds("ws1"))!;
    const other = nodes.find((b) => b !== recorder)!;
    assert.equal(slotsOf(other).holds("ws1"), false, "one recorder per workspace");
    const outbox = client.db().collection<OutboxDoc>(OUTBOX_COLLECTION);
    const first = await outbox.find({ endpointId: endpoint.id }).toArray();
    assert.deepEqual([...new Set(first.map((r) => r.recordedBy))], [recorder.nodeID], "recorded by it alone");

    // The recorder stops while the stream goes on; the other takes the workspace over.
    await Promise.all([send(10), recorder.stop()]);
    cluster.brokers.splice(cluster.brokers.indexOf(recorder), 1);
    await send(5);
    await waitFor(() => new Set(receiver.accepted.map((r) => r.body.id)).size === sent.length, {
      what: "every event after the hand-over",
      timeoutMs: 20000,
    });
    assert.ok(slotsOf(other).holds("ws1"), "the survivor records the workspace");
    // At least once: an attempt cut off by the stop may be sent again, right after itself.
    const accepted = receiver.accepted.map((r) => r.body.id as string);
    assert.deepEqual(
      accepted.filter((id, i) => id !== accepted[i - 1]),
      sent,
    );
    const rows = await outbox.find({ endpointId: endpoint.id }).sort({ seq: 1 }).toArray();
    assert.deepEqual(
      rows.map((r) => r.eventId),
      sent,
      "one row per event, in stream order",
    );
    assert.equal(rows.at(-1)!.recordedBy, other.nodeID);
  });

  it("an endpoint delivered by a node that no longer records its workspace is woken by the recorder, not by a scan", async () => {
    // Scans every minute here: a delivery within the test's time comes from the recorder's word.
    const slow = { webhookScanMs: 60000 };
    const first = cluster.node("wh1", [WebhooksService], slow);
    const pub = cluster.node("pub", []);
    await cluster.start();
    await waitFor(() => slotsOf(first)?.heldSlots().length === RECORDER_SLOTS, {
      what: "wh1 to hold every slot",
    });
    const broadcast: Broadcast = (event, payload) => pub.broadcast(event, payload);
    const publish = publishVia(loggingPublisher(new EventsRepo(client.db()), broadcast, console));
    // Eight workspaces, each with an endpoint that wh1 takes when it records their first event.
    const workspaces = Array.from({ length: 8 }, (_, i) => `wsmove${i}`);
    for (const ws of workspaces) await pub.call("webhooks.create", { workspaceId: ws, url: receiver.url });
    for (const ws of workspaces) await publish("account.status", statusEvent(ws, "acc_move", "connected"));
    await waitFor(() => receiver.accepted.length === workspaces.length, {
      what: "one delivery per workspace",
    });

    // A second node joins and takes half the slots: some workspaces are now recorded by it, while wh1
    // still holds their endpoints (busy, so not released).
    const second = cluster.node("wh2", [WebhooksService], slow);
    await cluster.start();
    await waitFor(() => slotsOf(second)?.heldSlots().length === RECORDER_SLOTS / 2, {
      what: "wh2 to take half the slots",
    });
    const moved = workspaces.find((ws) => slotsOf(second).holds(ws));
    assert.ok(moved, "a workspace whose slot moved to wh2 (each of 8 stays with wh1 with odds 1/2)");
    const ev = statusEvent(moved, "acc_move", "disconnected");
    await publish("account.status", ev);
    await waitFor(() => receiver.accepted.some((r) => r.body.id === eventIdOf("account.status", ev)), {
      what: `the event of ${moved}, recorded by wh2, delivered`,
      timeoutMs: 15000,
    });
    const rows = await client
      .db()
      .collection<OutboxDoc>(OUTBOX_COLLECTION)
      .find({ eventId: eventIdOf("account.status", ev) })
      .toArray();
    assert.deepEqual(
      rows.map((r) => r.recordedBy),
      ["wh2"],
    );
  });
});
