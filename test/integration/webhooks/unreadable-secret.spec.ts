// An endpoint whose secret no configured key opens (sealed under a key since dropped from SECRETS_KEY
// and SECRETS_KEY_PREVIOUS), for real: a webhooks node over NATS, the event log and the outbox in
// FerretDB. Its workspace's other endpoints still get their events, its own queue waits, and the
// tenant can list, read and remove it.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { MongoClient } from "mongodb";
import type { ServiceSchema } from "moleculer";
import WebhooksSchema from "../../../services/webhooks.service.ts";
import { loggingPublisher, publishVia, type Broadcast } from "../../../src/session/event-publisher.ts";
import { EventsRepo } from "../../../src/store/events-repo.ts";
import { SecretBox } from "../../../src/store/secrets.ts";
import { EndpointsRepo } from "../../../src/store/webhook-endpoints-repo.ts";
import type { OutboxDoc } from "../../../src/store/webhook-docs.ts";
import { OUTBOX_COLLECTION } from "../../../src/store/webhook-outbox-repo.ts";
import { eventIdOf } from "../../../src/webhooks/events.ts";
import type { DeliveryView, EndpointView } from "../../../src/webhooks/types.ts";
import { TestCluster } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";
import { FAST, statusEvent } from "./fixtures.ts";
import { WebhookReceiver } from "./receiver.ts";

const WebhooksService = WebhooksSchema as unknown as ServiceSchema;

describe("webhooks: an endpoint whose secret cannot be opened", function () {
  this.timeout(30000);
  let cluster: TestCluster;
  let receiver: WebhookReceiver;
  let client: MongoClient;

  beforeEach(async () => {
    receiver = await new WebhookReceiver().start();
    cluster = new TestCluster(FAST, "whsealed");
    client = await MongoClient.connect(cluster.mongoUrl);
  });
  afterEach(async () => {
    await cluster.stop();
    await receiver.stop();
    await client.close();
  });

  it("stops neither its workspace's recording nor its tenant's calls", async () => {
    cluster.node("wh1", [WebhooksService]);
    const pub = cluster.node("pub", []);
    await cluster.start();
    const good: EndpointView = await pub.call("webhooks.create", { workspaceId: "ws1", url: receiver.url });
    // Sealed under a key this cluster does not have.
    const otherKey = SecretBox.fromSettings(randomBytes(32).toString("base64"));
    const bad = await new EndpointsRepo(client.db(), otherKey).create({
      workspaceId: "ws1",
      url: `${receiver.url}?bad`,
      secret: "whsec_sealed_elsewhere_0",
    });

    const broadcast: Broadcast = (event, payload) => pub.broadcast(event, payload);
    const publish = publishVia(loggingPublisher(new EventsRepo(client.db()), broadcast, console));
    const ev = statusEvent("ws1", "acc_sealed", "connected");
    await publish("account.status", ev);
    const id = eventIdOf("account.status", ev);
    await waitFor(() => receiver.accepted.some((r) => r.body.id === id), {
      what: "the event delivered to the endpoint whose secret opens",
    });
    // Recorded for both: the one whose secret cannot be opened waits in its own queue.
    const rows = await client.db().collection<OutboxDoc>(OUTBOX_COLLECTION).find({ eventId: id }).toArray();
    assert.deepEqual(rows.map((r) => r.endpointId).sort(), [good.id, bad._id].sort());
    assert.equal(rows.find((r) => r.endpointId === bad._id)!.status, "pending");

    const list: { items: EndpointView[] } = await pub.call("webhooks.list", { workspaceId: "ws1" });
    assert.deepEqual(
      list.items.map((e) => [e.id, e.secretUnreadable ?? false]),
      [
        [good.id, false],
        [bad._id, true],
      ],
    );
    assert.ok(list.items.every((e) => !("secret" in e)));
    const got: EndpointView = await pub.call("webhooks.get", { workspaceId: "ws1", id: bad._id });
    assert.equal(got.secretUnreadable, true);
    const deliveries: { items: DeliveryView[] } = await pub.call("webhooks.deliveries", {
      workspaceId: "ws1",
      id: bad._id,
    });
    assert.deepEqual(
      deliveries.items.map((d) => [d.eventId, d.status]),
      [[id, "pending"]],
    );

    const removed: EndpointView = await pub.call("webhooks.remove", { workspaceId: "ws1", id: bad._id });
    assert.equal(removed.id, bad._id);
    const after: { items: EndpointView[] } = await pub.call("webhooks.list", { workspaceId: "ws1" });
    assert.deepEqual(
      after.items.map((e) => e.id),
      [good.id],
    );
  });
});
