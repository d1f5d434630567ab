// POST /api/v1/accounts/:id/messages on a real cluster (gateway + worker, simulated engine): every
// message type leaves the engine as asked, receipts reach the event log and the status record, and
// bad input is a 4xx with a stable type with nothing sent and no media left behind.
import { strict as assert } from "node:assert";
import type { Server } from "node:http";
import type { AccountView } from "../../../src/accounts/types.ts";
import type { GatewayCluster } from "../api/helpers.ts";
import { wholeLog } from "../events/support.ts";
import { waitFor } from "../../support/wait.ts";
import {
  MEDIA_MAX,
  OGG,
  PNG,
  assertError,
  connected,
  mediaServer,
  messagingCluster,
  send,
  sent,
  withDb,
} from "./support.ts";

describe("messages: sending every type", function () {
  this.timeout(60000);
  let gc: GatewayCluster;
  let key: string;
  let account: AccountView;
  let media: { url: string; server: Server };

  before(async () => {
    gc = await messagingCluster();
    key = (await gc.createKey("msgA")).key;
    account = await connected(gc, "msgA", "sender");
    media = await mediaServer({
      "/doc.pdf": ["application/pdf", Buffer.from("%PDF-1.4 hello")],
      "/big.png": ["image/png", Buffer.concat([PNG, Buffer.alloc(MEDIA_MAX)])],
      "/untyped": ["", PNG],
    });
  });
  after(async () => {
    media?.server.close();
    await gc?.stop();
  });

  it("a plain {to, text} answers {id, status: sent, at}; receipts sent → delivered → read follow", async () => {
    const res = await send(gc.gw, key, account.id, { to: "4915100000002", text: "hello" });
    assert.equal(res.status, 200, String(res.body));
    assert.equal(res.json.status, "sent");
    assert.match(res.json.id, /^true_4915100000002@c\.us_3EB0/);
    assert.ok(!Number.isNaN(Date.parse(res.json.at)));
    assert.deepEqual(sent(account.id).at(-1), {
      id: res.json.id,
      to: "4915100000002",
      type: "text",
      text: "hello",
      at: sent(account.id).at(-1)!.at,
    });
    const path = `/api/v1/accounts/${account.id}/messages/${encodeURIComponent(res.json.id)}`;
    const read = await waitFor(
      async () => {
        const r = await gc.gw.call("GET", path, { key });
        return r.status === 200 && r.json.status === "read" ? r.json : null;
      },
      { what: "the message to be read" },
    );
    assert.equal(read.id, res.json.id);
    assert.equal(read.to, "4915100000002");
    assert.equal(read.type, "text");
    assert.ok(read.sentAt);
    const acks = await waitFor(
      async () => {
        const log = await wholeLog(gc.gw.broker, "msgA");
        const mine = log.filter(
          (e) => e.event === "account.message_ack" && (e.payload as any).messageId === res.json.id,
        );
        return mine.length === 3 ? mine.map((e) => (e.payload as any).status) : null;
      },
      { what: "three receipts in the event log" },
    );
    assert.deepEqual(acks, ["sent", "delivered", "read"]);
  });

  it("GET …/messages/:id is a 404 for an unknown message and for another workspace's key", async () => {
    const res = await send(gc.gw, key, account.id, { to: "4915100000002", text: "mine" });
    const other = (await gc.createKey("msgB")).key;
    const path = `/api/v1/accounts/${account.id}/messages/${encodeURIComponent(res.json.id)}`;
    assertError(await gc.gw.call("GET", path, { key: other }), 404, "NOT_FOUND");
    assertError(
      await gc.gw.call("GET", `/api/v1/accounts/${account.id}/messages/nope`, { key }),
      404,
      "NOT_FOUND",
    );
  });

  it("image, audio (played), document by URL, location, contact, reply with mentions, reaction", async () => {
    const before = sent(account.id).length;
    const image = await send(gc.gw, key, account.id, {
      to: "4915100000002",
      type: "image",
      media: { base64: PNG.toString("base64"), mimetype: "image/png", filename: "a.png" },
      caption: "look",
    });
    assert.equal(image.status, 200, String(image.body));
    const audio = await send(gc.gw, key, account.id, {
      to: "120363012345678901@g.us",
      type: "audio",
      media: { base64: OGG.toString("base64"), mimetype: "audio/ogg; codecs=opus" },
    });
    assert.equal(audio.status, 200, String(audio.body));
    const doc = await send(gc.gw, key, account.id, {
      to: "4915100000002",
      type: "document",
      media: { url: `${media.url}/doc.pdf` },
    });
    assert.equal(doc.status, 200, String(doc.body));
    const loc = await send(gc.gw, key, account.id, {
      to: "4915100000002",
      type: "location",
      location: { latitude: 52.52, longitude: 13.4, name: "Berlin" },
    });
    const card = await send(gc.gw, key, account.id, {
      to: "4915100000002",
      type: "contact",
      contact: { name: "Ann", phoneNumber: "+4915100000009" },
    });
    const reply = await send(gc.gw, key, account.id, {
      to: "120363012345678901@g.us",
      text: "@4915100000009 yes",
      replyTo: image.json.id,
      mentions: ["4915100000009"],
    });
    const reaction = await send(gc.gw, key, account.id, {
      to: "4915100000002",
      type: "reaction",
      replyTo: image.json.id,
      emoji: "👍",
    });
    for (const r of [loc, card, reply, reaction]) assert.equal(r.status, 200, String(r.body));
    const out = sent(account.id).slice(before);
    assert.deepEqual(
      out.map((m) => m.type),
      ["image", "audio", "document", "location", "contact", "text", "reaction"],
    );
    assert.deepEqual(out[0].media, { mimetype: "image/png", filename: "a.png", size: PNG.length });
    assert.equal(out[0].caption, "look");
    assert.equal(out[1].media!.mimetype, "audio/ogg");
    assert.deepEqual(out[2].media, { mimetype: "application/pdf", filename: "doc.pdf", size: 14 });
    assert.deepEqual(out[3].location, { latitude: 52.52, longitude: 13.4, name: "Berlin" });
    assert.deepEqual(out[4].contact, { name: "Ann", phoneNumber: "+4915100000009" });
    assert.equal(out[5].replyTo, image.json.id);
    assert.deepEqual(out[5].mentions, ["4915100000009"]);
    assert.deepEqual([out[6].replyTo, out[6].emoji], [image.json.id, "👍"]);
    await waitFor(
      async () => {
        const r = await gc.gw.call(
          "GET",
          `/api/v1/accounts/${account.id}/messages/${encodeURIComponent(audio.json.id)}`,
          { key },
        );
        return r.json?.status === "played";
      },
      { what: "the voice note to be played" },
    );
    // Every inline file was deleted once sent.
    assert.equal(await withDb(gc, (db) => db.collection("outbound_media.files").countDocuments()), 0);
  });

  it("bad input: a 4xx with a stable type each, nothing sent, no media left behind", async () => {
    const before = sent(account.id).length;
    const png = PNG.toString("base64");
    const cases: [unknown, number, string][] = [
      [{ to: "4915100000002", type: "sticker", text: "x" }, 422, "UNSUPPORTED_MESSAGE_TYPE"],
      [{ to: "not-a-number", text: "x" }, 422, "INVALID_RECIPIENT"],
      [{ to: "4915100000002@example.com", text: "x" }, 422, "INVALID_RECIPIENT"],
      [
        { to: "4915100000002", type: "image", media: { base64: "%%%", mimetype: "image/png" } },
        422,
        "INVALID_MEDIA",
      ],
      [
        {
          to: "4915100000002",
          type: "image",
          media: { base64: Buffer.alloc(MEDIA_MAX + 1).toString("base64"), mimetype: "image/png" },
        },
        413,
        "MEDIA_TOO_LARGE",
      ],
      [
        { to: "4915100000002", type: "image", media: { base64: png, mimetype: "application/pdf" } },
        422,
        "MEDIA_TYPE_MISMATCH",
      ],
      [
        { to: "4915100000002", type: "audio", media: { base64: png, mimetype: "audio/ogg" } },
        422,
        "MEDIA_TYPE_MISMATCH",
      ],
      [
        { to: "4915100000002", type: "image", media: { url: "http://10.1.2.3/a.png" } },
        422,
        "URL_NOT_ALLOWED",
      ],
      [
        { to: "4915100000002", type: "image", media: { url: "http://169.254.169.254/latest" } },
        422,
        "URL_NOT_ALLOWED",
      ],
      [
        { to: "4915100000002", type: "image", media: { url: `${media.url}/big.png` } },
        413,
        "MEDIA_TOO_LARGE",
      ],
      [
        { to: "4915100000002", type: "image", media: { url: `${media.url}/missing.png` } },
        422,
        "MEDIA_UNAVAILABLE",
      ],
      [
        { to: "4915100000002", type: "image", media: { url: `${media.url}/untyped` } },
        422,
        "MEDIA_TYPE_MISMATCH",
      ],
      [{ to: "4915100000002" }, 422, "VALIDATION_ERROR"],
    ];
    for (const [body, status, type] of cases)
      assertError(await send(gc.gw, key, account.id, body), status, type);
    // A body past the media route's own limit never reaches the action.
    const huge = {
      to: "4915100000002",
      type: "image",
      media: { base64: "A".repeat(MEDIA_MAX * 2 + 70000), mimetype: "image/png" },
    };
    const tooBig = await send(gc.gw, key, account.id, huge);
    assertError(tooBig, 413, "PAYLOAD_TOO_LARGE");
    assert.equal(tooBig.json.data.limit, "MEDIA_MAX_BYTES in base64 plus 64kb");
    assert.equal(sent(account.id).length, before, "nothing was sent");
    assert.equal(await withDb(gc, (db) => db.collection("outbound_media.files").countDocuments()), 0);
    assert.equal(await withDb(gc, (db) => db.collection("idempotency").countDocuments()), 0);
  });
});
