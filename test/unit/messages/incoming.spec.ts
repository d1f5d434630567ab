import { strict as assert } from "node:assert";
import {
  contactOfVcard,
  contentDisposition,
  mediaContentType,
  incomingEventOf,
  incomingMediaPath,
} from "../../../src/messages/incoming.ts";

describe("messages/incoming", () => {
  const base = {
    id: "false_4915100000001@c.us_3EB0AA",
    from: "4915100000001",
    text: "hi",
    timestamp: 1700000000,
  };

  it("a text message keeps the fields of the text-only days and adds type, sender, isGroup", () => {
    assert.deepEqual(incomingEventOf("acc_1", { ...base, to: "4915199999999" }, false), {
      ...base,
      to: "4915199999999",
      type: "text",
      sender: "4915100000001",
      isGroup: false,
    });
  });

  it("a media message: caption from its text, media metadata with the route's path when kept, null when not", () => {
    const media = { data: Buffer.from("abc"), mimetype: "image/jpeg", filename: "a.jpg" };
    const kept = incomingEventOf("acc_1", { ...base, type: "image", media }, true);
    assert.equal(kept.type, "image");
    assert.equal(kept.caption, "hi");
    assert.equal(kept.text, "hi");
    assert.deepEqual(kept.media, {
      mimetype: "image/jpeg",
      filename: "a.jpg",
      size: 3,
      mediaUrl: "/api/v1/accounts/acc_1/messages/false_4915100000001%40c.us_3EB0AA/media",
    });
    assert.equal(JSON.stringify(kept).includes("YWJj"), false, "no bytes in the event");
    const lost = incomingEventOf(
      "acc_1",
      { ...base, text: "", media: { ...media, filename: undefined } },
      false,
    );
    assert.equal(lost.type, "document", "media without a type is a document");
    assert.equal(lost.caption, undefined);
    assert.deepEqual(lost.media, { mimetype: "image/jpeg", filename: null, size: 3, mediaUrl: null });
  });

  it("a group message names the group as `from` and its author as sender; a reply its quoted id", () => {
    const e = incomingEventOf(
      "acc_1",
      { ...base, from: "1203630@g.us", author: "4915100000002", quotedId: "false_x_1" },
      false,
    );
    assert.equal(e.isGroup, true);
    assert.equal(e.sender, "4915100000002");
    assert.equal(e.author, "4915100000002");
    assert.equal(e.quotedId, "false_x_1");
  });

  it("a media message the engine could not download says why", () => {
    const e = incomingEventOf("acc_1", { ...base, type: "video", mediaError: "expired" }, false);
    assert.equal(e.mediaError, "expired");
    assert.equal(e.media, undefined);
  });

  it("the media path encodes the message id", () => {
    assert.equal(incomingMediaPath("acc_1", "a/b@c"), "/api/v1/accounts/acc_1/messages/a%2Fb%40c/media");
  });

  it("reads the name and number of a WhatsApp vCard (waid first, the number's digits otherwise)", () => {
    const wa =
      "BEGIN:VCARD\nVERSION:3.0\nFN:Ann Lee\nTEL;type=CELL;waid=4915100000003:+49 151 00000003\nEND:VCARD";
    assert.deepEqual(contactOfVcard(wa), { vcard: wa, name: "Ann Lee", phoneNumber: "4915100000003" });
    const plain = "BEGIN:VCARD\r\nFN;CHARSET=UTF-8:Bo\r\nitem1.TEL:+1 (555) 000-1111\r\nEND:VCARD";
    assert.deepEqual(contactOfVcard(plain), { vcard: plain, name: "Bo", phoneNumber: "15550001111" });
    assert.deepEqual(contactOfVcard("BEGIN:VCARD\nEND:VCARD"), { vcard: "BEGIN:VCARD\nEND:VCARD" });
  });

  it("serves media with its own type when that is a printable type/subtype, else application/octet-stream", () => {
    assert.equal(mediaContentType("image/png"), "image/png");
    assert.equal(mediaContentType("audio/ogg; codecs=opus"), "audio/ogg; codecs=opus");
    for (const odd of [
      "text/plain\u2603",
      "text/plain\u0001",
      "text/plain\r\nX-Evil: 1",
      "not a type",
      "",
      undefined,
    ])
      assert.equal(mediaContentType(odd), "application/octet-stream", JSON.stringify(odd));
    assert.equal(mediaContentType(`text/plain; x=${"a".repeat(300)}`), "application/octet-stream");
  });

  it("serves media as an attachment, with a safe plain name and the exact one in filename*", () => {
    assert.equal(contentDisposition(null), "attachment");
    assert.equal(contentDisposition("a b.pdf"), `attachment; filename="a b.pdf"; filename*=UTF-8''a%20b.pdf`);
    assert.equal(
      contentDisposition('Ünï "x"(1).txt'),
      `attachment; filename="_n_ _x_(1).txt"; filename*=UTF-8''%C3%9Cn%C3%AF%20%22x%22%281%29.txt`,
    );
  });
});
