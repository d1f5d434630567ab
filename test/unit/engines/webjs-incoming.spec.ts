import { strict as assert } from "node:assert";
import {
  incomingFieldsOf,
  incomingTypeOf,
  reactionMessageOf,
  readIncoming,
  type WebjsIncoming,
} from "../../../src/engines/webjs/incoming.ts";

describe("engines/webjs/incoming", () => {
  const msg = (over: Partial<WebjsIncoming>): WebjsIncoming => ({
    id: { _serialized: "false_4915100000001@c.us_3EB0AA" },
    from: "4915100000001@c.us",
    to: "4915199999999@c.us",
    body: "",
    timestamp: 1700000000,
    ...over,
  });

  it("maps whatsapp-web.js types: chat → text, ptt → audio, vcard lists → contact, unknown → other", () => {
    assert.equal(incomingTypeOf("chat"), "text");
    assert.equal(incomingTypeOf("ptt"), "audio");
    assert.equal(incomingTypeOf("multi_vcard"), "contact");
    assert.equal(incomingTypeOf("poll_creation"), "other");
    assert.equal(incomingTypeOf(undefined), "text");
  });

  it("a group message: the group stays whole, its author becomes a number", () => {
    const m = incomingFieldsOf(
      msg({ from: "1203630@g.us", author: "4915100000002@c.us", body: "hi", type: "chat" }),
    );
    assert.equal(m.from, "1203630@g.us");
    assert.equal(m.author, "4915100000002");
    assert.equal(m.text, "hi");
    assert.equal(m.type, "text");
  });

  it("a location's text is its description (its body is a thumbnail); vCards become contacts", () => {
    const loc = incomingFieldsOf(
      msg({
        type: "location",
        body: "/9j/4AAQ",
        location: { latitude: "52.5", longitude: 13.4, description: "Office" },
      }),
    );
    assert.equal(loc.text, "Office");
    assert.deepEqual(loc.location, { latitude: 52.5, longitude: 13.4, name: "Office" });
    const card = "BEGIN:VCARD\nFN:Ann\nTEL;waid=4915100000003:+49\nEND:VCARD";
    const contact = incomingFieldsOf(msg({ type: "vcard", body: card, vCards: [card] }));
    assert.equal(contact.text, "");
    assert.deepEqual(contact.contacts, [{ vcard: card, name: "Ann", phoneNumber: "4915100000003" }]);
  });

  it("downloads the media and reads the quoted id; a failed download leaves mediaError, never a rejection", async () => {
    const ok = await readIncoming(
      msg({
        type: "image",
        body: "caption",
        hasMedia: true,
        hasQuotedMsg: true,
        downloadMedia: async () => ({ mimetype: "image/png", data: Buffer.from("png!").toString("base64") }),
        getQuotedMessage: async () => ({ id: { _serialized: "true_x_1" } }),
      }),
    );
    assert.equal(ok.type, "image");
    assert.equal(ok.text, "caption");
    assert.equal(ok.quotedId, "true_x_1");
    assert.deepEqual(ok.media, { data: Buffer.from("png!"), mimetype: "image/png", filename: undefined });

    const failed = await readIncoming(
      msg({
        type: "video",
        hasMedia: true,
        hasQuotedMsg: true,
        downloadMedia: async () => undefined,
        getQuotedMessage: async () => {
          throw new Error("page gone");
        },
      }),
    );
    assert.equal(failed.media, undefined);
    assert.match(failed.mediaError!, /no media/);
    assert.equal(failed.quotedId, undefined);
  });

  it("a reaction of someone else is a `reaction` message naming the message reacted to; our own are dropped", () => {
    const group = reactionMessageOf({
      id: {
        _serialized: "false_1203630@g.us_3EB0R_4915100000002@c.us",
        fromMe: false,
        remote: "1203630@g.us",
      },
      reaction: "👍",
      msgId: { _serialized: "true_1203630@g.us_3EB0M" },
      senderId: "4915100000002@c.us",
      timestamp: 1700000000123,
    });
    assert.deepEqual(group, {
      id: "false_1203630@g.us_3EB0R_4915100000002@c.us",
      from: "1203630@g.us",
      text: "",
      timestamp: 1700000000,
      type: "reaction",
      emoji: "👍",
      quotedId: "true_1203630@g.us_3EB0M",
      author: "4915100000002",
    });
    const removed = reactionMessageOf({
      id: { _serialized: "false_4915100000001@c.us_3EB0R", remote: { _serialized: "4915100000001@c.us" } },
      reaction: "",
      senderId: "4915100000001@c.us",
      timestamp: 1700000000,
    });
    assert.equal(removed?.from, "4915100000001");
    assert.equal(removed?.emoji, "");
    assert.equal(removed?.author, undefined);
    assert.equal(reactionMessageOf({ id: { _serialized: "true_x_1", fromMe: true }, reaction: "👍" }), null);
    assert.equal(reactionMessageOf({ reaction: "👍" }), null);
  });
});
