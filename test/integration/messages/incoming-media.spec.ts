// Received messages on a real cluster (a gateway, a second gateway without `accounts`, a worker and a
// webhooks node; simulated engine): a media message reaches a webhook as `account.message` with its
// type, caption, sender and media metadata; GET …/media answers the same bytes the worker kept in
// GridFS (through the second gateway as a stream over NATS, for a file larger than a bus message); after
// INCOMING_MEDIA_RETENTION_MS the file is pruned and the route answers 404; a group reply carries its
// author and quoted id; deleting an account deletes its media, idempotency and status records.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import type { ServiceSchema } from "moleculer";
import WebhooksSchema from "../../../services/webhooks.service.ts";
import type { AccountView } from "../../../src/accounts/types.ts";
import { IDEMPOTENCY_COLLECTION } from "../../../src/store/idempotency-repo.ts";
import { INCOMING_MEDIA_BUCKET, IncomingMediaStore } from "../../../src/store/incoming-media.ts";
import { incomingMediaPath } from "../../../src/messages/incoming.ts";
import { createApiService } from "../../../services/api.service.ts";
import { MESSAGE_STATUS_COLLECTION } from "../../../src/store/message-status-repo.ts";
import { GatewayCluster } from "../api/helpers.ts";
import { connectedAccount, LONG_QR } from "../events/support.ts";
import { WebhookReceiver } from "../webhooks/receiver.ts";
import { waitFor } from "../../support/wait.ts";
import { PNG, assertError, send, withDb } from "./support.ts";

const WebhooksService = WebhooksSchema as unknown as ServiceSchema;
/** Short enough to see pruning within the spec, long enough for the steps before it. */
const RETENTION_MS = 8000;

interface MessageEvent {
  accountId: string;
  workspaceId: string;
  id: string;
  from: string;
  text: string;
  type: string;
  sender: string;
  author?: string;
  isGroup: boolean;
  caption?: string;
  quotedId?: string;
  media?: { mimetype: string; filename: string | null; size: number; mediaUrl: string | null };
}

describe("messages: incoming media", function () {
  this.timeout(60000);
  let gc: GatewayCluster;
  let receiver: WebhookReceiver;
  let key: string;
  let otherKey: string;
  let account: AccountView;

  before(async () => {
    receiver = await new WebhookReceiver().start();
    gc = new GatewayCluster({
      qr: LONG_QR,
      rateLimitPerMinute: 100000,
      incomingMediaRetentionMs: RETENTION_MS,
      simulatedAckMs: 30,
      sendMinGapMs: 0,
      webhookPollMs: 50,
      webhookAllowPrivate: "127.0.0.1",
    });
    await gc.addGateway("gw");
    // A gateway without `accounts`: its media answers come from gw's accounts as a stream over NATS.
    gc.cluster.node("gw2", [createApiService(gc.cluster.config("gw2", { services: ["api"], port: 0 }))], {
      services: ["api"],
      port: 0,
    });
    await gc.addWorker("w1");
    gc.cluster.node("wh1", [WebhooksService], { services: ["webhooks"] });
    await gc.start();
    await gc.gw.broker.waitForServices(["webhooks"], 10000);
    key = (await gc.createKey("inA")).key;
    otherKey = (await gc.createKey("inB")).key;
    account = await connectedAccount(gc.gw.broker, "inA", "receiver");
    const hook = await gc.gw.call("POST", "/api/v1/webhooks", {
      key,
      body: { url: receiver.url, events: ["account.message"] },
    });
    assert.equal(hook.status, 201, String(hook.body));
  });
  after(async () => {
    await gc?.stop();
    await receiver?.stop();
  });

  const simulate = (accountId: string, body: Record<string, unknown>) =>
    gc.gw.call("POST", `/api/v1/accounts/${accountId}/simulate/message`, { key, body });

  /** The first webhook delivery of an account.message that `match` accepts. */
  const delivered = (what: string, match: (e: MessageEvent) => boolean) =>
    waitFor(
      () =>
        receiver.accepted
          .map((r) => (r.body as { event: string; data: MessageEvent }) ?? null)
          .find((b) => b?.event === "account.message" && match(b.data))?.data,
      { what, timeoutMs: 15000 },
    );

  const mediaFiles = (accountId: string) =>
    withDb(gc, (db) =>
      db.collection(`${INCOMING_MEDIA_BUCKET}.files`).countDocuments({ "metadata.accountId": accountId }),
    );

  it("a media message → webhook with type, caption, sender and media; GET mediaUrl streams the same bytes", async () => {
    const res = await simulate(account.id, {
      from: "4915100000777",
      text: "look at this",
      type: "image",
      media: { base64: PNG.toString("base64"), mimetype: "image/png", filename: "photo 1.png" },
    });
    assert.equal(res.status, 200, String(res.body));
    const event = await delivered("the image message at the webhook", (e) => e.type === "image");
    assert.equal(event.accountId, account.id);
    assert.equal(event.workspaceId, "inA");
    assert.equal(event.from, "4915100000777");
    assert.equal(event.sender, "4915100000777");
    assert.equal(event.isGroup, false);
    assert.equal(event.text, "look at this", "the text field stays (the caption)");
    assert.equal(event.caption, "look at this");
    const path = `/api/v1/accounts/${account.id}/messages/${encodeURIComponent(event.id)}/media`;
    assert.deepEqual(event.media, {
      mimetype: "image/png",
      filename: "photo 1.png",
      size: PNG.length,
      mediaUrl: path,
    });

    const media = await gc.gw.call("GET", event.media!.mediaUrl!, { key });
    assert.equal(media.status, 200, String(media.body));
    assert.equal(media.headers["content-type"], "image/png");
    assert.equal(media.headers["content-length"], String(PNG.length));
    assert.match(String(media.headers["content-disposition"]), /^attachment; filename="photo 1.png"/);
    assert.ok(media.body.equals(PNG), "the same bytes");

    // Another workspace's key, an unknown message, a malformed id: 404 / 422, never the bytes.
    assertError(await gc.gw.call("GET", path, { key: otherKey }), 404, "NOT_FOUND");
    const unknown = `/api/v1/accounts/${account.id}/messages/false_1@c.us_3EB0NOPE/media`;
    assertError(await gc.gw.call("GET", unknown, { key }), 404, "NOT_FOUND");

    // Past its retention the file is pruned by the worker, and the route answers 404.
    await waitFor(async () => (await gc.gw.call("GET", path, { key })).status === 404, {
      what: "the media to expire",
      timeoutMs: RETENTION_MS + 10000,
    });
    assertError(await gc.gw.call("GET", path, { key }), 404, "NOT_FOUND");
    await waitFor(async () => (await mediaFiles(account.id)) === 0, {
      what: "the expired file to be pruned",
      timeoutMs: 10000,
    });
  });

  it("a stored mimetype that is no header value (a snowman, a control character) is served as application/octet-stream", async () => {
    // Whatever the sender's WhatsApp declared is kept; only the answer's Content-Type is made safe.
    const bytes = Buffer.from("plain text, oddly typed");
    for (const [n, mimetype] of ["text/plain\u2603", "text/plain\u0001", "not a type"].entries()) {
      const res = await simulate(account.id, {
        from: "4915100000777",
        text: `odd type ${n}`,
        type: "document",
        media: { base64: bytes.toString("base64"), mimetype },
      });
      assert.equal(res.status, 200, String(res.body));
      const event = await delivered(`the document of odd type ${n}`, (e) => e.text === `odd type ${n}`);
      assert.equal(event.media?.mimetype, mimetype, "the event tells the type as it came");
      const media = await gc.gw.call("GET", event.media!.mediaUrl!, { key });
      assert.equal(media.status, 200, `${JSON.stringify(mimetype)}: ${media.body}`);
      assert.equal(media.headers["content-type"], "application/octet-stream");
      assert.ok(media.body.equals(bytes), "the same bytes");
    }
    // A type with parameters is served as it came.
    const voice = await simulate(account.id, {
      from: "4915100000777",
      text: "voice",
      type: "audio",
      media: { base64: bytes.toString("base64"), mimetype: "audio/ogg; codecs=opus" },
    });
    assert.equal(voice.status, 200, String(voice.body));
    const event = await delivered("the voice note", (e) => e.text === "voice");
    const media = await gc.gw.call("GET", event.media!.mediaUrl!, { key });
    assert.equal(media.status, 200, String(media.body));
    assert.equal(media.headers["content-type"], "audio/ogg; codecs=opus");
  });

  it("a file larger than a bus message streams through a gateway without accounts, bytes intact", async () => {
    // Stored as the owner stores it (the simulate route's body limit keeps simulated files small).
    const big = randomBytes(700 * 1024);
    const messageId = "false_4915100000777@c.us_3EB0BIGFILE";
    await withDb(gc, (db) =>
      new IncomingMediaStore(db, RETENTION_MS).put(
        { workspaceId: "inA", accountId: account.id, messageId, mimetype: "video/mp4", filename: null },
        big,
      ),
    );
    const gw2 = gc.gateways.find((g) => g.broker.nodeID.endsWith("gw2"))!;
    assert.equal(gw2.broker.getLocalService("accounts"), undefined);
    const res = await gw2.call("GET", incomingMediaPath(account.id, messageId), { key });
    assert.equal(res.status, 200, String(res.body).slice(0, 200));
    assert.equal(res.headers["content-type"], "video/mp4");
    assert.equal(res.headers["content-disposition"], "attachment");
    assert.ok(res.body.equals(big), `the same ${big.length} bytes (got ${res.body.length})`);
  });

  it("a group reply carries the group, its author as sender, and the quoted message id; text messages keep their fields", async () => {
    const group = "120363012345678901@g.us";
    const quoted = "false_4915100000777@c.us_3EB0AAAAAAAAAAAAAAAA";
    const res = await simulate(account.id, {
      from: group,
      text: "agreed",
      author: "4915100000888",
      quotedId: quoted,
    });
    assert.equal(res.status, 200, String(res.body));
    const event = await delivered("the group reply", (e) => e.text === "agreed");
    assert.equal(event.type, "text");
    assert.equal(event.from, group);
    assert.equal(event.isGroup, true);
    assert.equal(event.author, "4915100000888");
    assert.equal(event.sender, "4915100000888");
    assert.equal(event.quotedId, quoted);
    assert.equal(event.media, undefined);
    assert.equal(event.caption, undefined);
  });

  it("deleting an account deletes its received media, idempotency records and message status records", async () => {
    const doomed = await connectedAccount(gc.gw.broker, "inA", "doomed");
    const sent = await send(
      gc.gw,
      key,
      doomed.id,
      { to: "4915100000999", text: "bye" },
      { "Idempotency-Key": "k-1" },
    );
    assert.equal(sent.status, 200, String(sent.body));
    const got = await simulate(doomed.id, {
      from: "4915100000999",
      text: "",
      type: "document",
      media: { base64: Buffer.from("%PDF-1.4 keep").toString("base64"), mimetype: "application/pdf" },
    });
    assert.equal(got.status, 200, String(got.body));
    const event = await delivered("the doomed account's document", (e) => e.accountId === doomed.id);
    assert.equal(event.type, "document");
    assert.equal(event.caption, undefined, "no caption when the text is empty");
    const count = (col: string) =>
      withDb(gc, (db) => db.collection(col).countDocuments({ accountId: doomed.id }));
    assert.equal(await mediaFiles(doomed.id), 1);
    assert.equal(await count(IDEMPOTENCY_COLLECTION), 1);
    await waitFor(async () => (await count(MESSAGE_STATUS_COLLECTION)) === 1, { what: "the status record" });

    const del = await gc.gw.call("DELETE", `/api/v1/accounts/${doomed.id}`, { key });
    assert.equal(del.status, 200, String(del.body));
    assert.equal(await mediaFiles(doomed.id), 0);
    assert.equal(await count(IDEMPOTENCY_COLLECTION), 0);
    assert.equal(await count(MESSAGE_STATUS_COLLECTION), 0);
    assertError(await gc.gw.call("GET", event.media!.mediaUrl!, { key }), 404, "NOT_FOUND");
    // The other account's records are untouched.
    assert.equal((await gc.gw.call("GET", `/api/v1/accounts/${account.id}`, { key })).status, 200);
  });
});
