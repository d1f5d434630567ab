// Validation of a send request: every refusal has a stable type, and nothing is decoded past the limit.
import { strict as assert } from "node:assert";
import {
  checkSendRequest,
  decodeBase64,
  filenameOf,
  isRecipient,
  requestDigest,
  sniffMimetype,
  type SendRequest,
} from "../../../src/messages/validate.ts";
import { ackRank } from "../../../src/messages/types.ts";

const LIMITS = { mediaMaxBytes: 1024 };
const PNG = Buffer.concat([Buffer.from("89504e470d0a1a0a", "hex"), Buffer.alloc(32, 1)]);
const JPEG = Buffer.concat([Buffer.from("ffd8ffe0", "hex"), Buffer.alloc(32, 2)]);

function refusal(req: SendRequest, limits = LIMITS): { type: string; code: number; data: any } {
  try {
    checkSendRequest(req, limits);
  } catch (err) {
    const e = err as { type: string; code: number; data: unknown };
    return { type: e.type, code: e.code, data: e.data };
  }
  assert.fail(`accepted ${JSON.stringify(req)}`);
}

describe("messages/validate", () => {
  it("a plain {to, text} is a text message (type defaults to text)", () => {
    const { draft, media } = checkSendRequest({ to: "+49 151 2345678", text: "hi" }, LIMITS);
    assert.deepEqual(draft, { to: "+49 151 2345678", type: "text", text: "hi" });
    assert.equal(media, null);
  });

  it("recipients: phone numbers and chat ids, nothing else", () => {
    for (const ok of [
      "4915123456",
      "+4915123456",
      "49 151-2345678",
      "4915123456@c.us",
      "120363012345678901@g.us",
      "12345678-1234567@g.us",
    ])
      assert.ok(isRecipient(ok), ok);
    for (const bad of [
      "49151",
      "hello",
      "4915123456@example.com",
      "+",
      "4915123456@c.us ",
      "1234567890123456789",
    ])
      assert.ok(!isRecipient(bad), bad);
    assert.deepEqual(refusal({ to: "bob", text: "x" }), {
      type: "INVALID_RECIPIENT",
      code: 422,
      data: { field: "to", to: "bob" },
    });
    assert.equal(refusal({ to: "4915123456", text: "x", mentions: ["nobody"] }).type, "INVALID_RECIPIENT");
  });

  it("unknown type → UNSUPPORTED_MESSAGE_TYPE; missing or stray fields → VALIDATION_ERROR", () => {
    assert.equal(refusal({ to: "4915123456", type: "sticker" }).type, "UNSUPPORTED_MESSAGE_TYPE");
    assert.equal(refusal({ to: "4915123456" }).type, "VALIDATION_ERROR");
    assert.equal(refusal({ to: "4915123456", text: "x", caption: "y" }).type, "VALIDATION_ERROR");
    assert.equal(
      refusal({
        to: "4915123456",
        type: "image",
        text: "x",
        media: { base64: PNG.toString("base64"), mimetype: "image/png" },
      }).type,
      "VALIDATION_ERROR",
    );
    assert.equal(refusal({ to: "4915123456", type: "reaction", emoji: "👍" }).type, "VALIDATION_ERROR");
    assert.equal(
      refusal({ to: "4915123456", type: "location", location: { latitude: 91, longitude: 0 } }).type,
      "VALIDATION_ERROR",
    );
    assert.equal(
      refusal({ to: "4915123456", type: "contact", contact: { name: "A", phoneNumber: "x" } }).type,
      "VALIDATION_ERROR",
    );
  });

  it("media: bad base64 → INVALID_MEDIA; too large → MEDIA_TOO_LARGE 413 (before decoding)", () => {
    const image = (base64: string, mimetype = "image/png"): SendRequest => ({
      to: "4915123456",
      type: "image",
      media: { base64, mimetype },
    });
    for (const bad of ["not base64!", "abc", "", "QUJD=A=="])
      assert.equal(refusal(image(bad)).type, "INVALID_MEDIA", bad);
    const big = refusal(image(Buffer.alloc(1025).toString("base64")));
    assert.equal(big.type, "MEDIA_TOO_LARGE");
    assert.equal(big.code, 413);
    assert.equal(big.data.limit, 1024);
    assert.equal(decodeBase64(Buffer.alloc(1024).toString("base64"), 1024).data.length, 1024);
  });

  it("media: a filename or mimetype that is not a string is refused (4xx), whatever the object holds", () => {
    // `String()` of this object throws: a refusal, not an internal error.
    const hostile = { toString: 0 } as unknown as string;
    const doc = (media: object): SendRequest =>
      ({ to: "4915123456", type: "document", media }) as SendRequest;
    const base64 = PNG.toString("base64");
    const badName = refusal(doc({ base64, mimetype: "application/pdf", filename: hostile }));
    assert.deepEqual(
      [badName.type, badName.code, badName.data[0].field],
      ["VALIDATION_ERROR", 422, "media.filename"],
    );
    assert.equal(refusal(doc({ base64, mimetype: hostile })).type, "MEDIA_TYPE_MISMATCH");
    assert.equal(
      refusal(doc({ url: "https://example.com/a.pdf", mimetype: hostile })).type,
      "MEDIA_TYPE_MISMATCH",
    );
    assert.equal(refusal(doc({ url: "https://example.com/a.pdf", filename: 7 })).type, "VALIDATION_ERROR");
  });

  it("a fetched file is named by the URL's last segment, decoded when it can be", () => {
    assert.equal(filenameOf("https://example.com/files/a%20b.pdf?x=1"), "a b.pdf");
    assert.equal(filenameOf("https://example.com/100%.pdf"), "100%.pdf");
    assert.equal(filenameOf("https://example.com/%E0%A4%A.pdf"), "%E0%A4%A.pdf");
    assert.equal(filenameOf("https://example.com/"), undefined);
  });

  it("media: the mimetype must suit the type, and the bytes must not contradict it → MEDIA_TYPE_MISMATCH", () => {
    const req = (type: string, mimetype: string, data = PNG): SendRequest => ({
      to: "4915123456",
      type,
      media: { base64: data.toString("base64"), mimetype },
    });
    assert.equal(refusal(req("image", "application/pdf")).type, "MEDIA_TYPE_MISMATCH");
    assert.equal(refusal(req("audio", "image/png")).type, "MEDIA_TYPE_MISMATCH");
    assert.equal(refusal(req("video", "video/mp4", JPEG)).type, "MEDIA_TYPE_MISMATCH");
    assert.equal(refusal(req("image", "not a mimetype")).type, "MEDIA_TYPE_MISMATCH");
    // A document may be of any type, but a type it must be (one past ASCII could not be served either).
    assert.equal(refusal(req("document", "text/plain\u2603")).type, "MEDIA_TYPE_MISMATCH");
    // A JPEG declared as PNG is still an image: accepted with the declared type.
    const ok = checkSendRequest(req("image", "image/png; charset=x", JPEG), LIMITS);
    assert.equal(ok.media?.kind, "inline");
    assert.equal(ok.media?.kind === "inline" && ok.media.mimetype, "image/png");
    // A document may be anything.
    assert.ok(checkSendRequest(req("document", "application/x-custom"), LIMITS).media);
    // A data URL names its mimetype itself.
    const dataUrl = {
      to: "4915123456",
      type: "image",
      media: { base64: `data:image/jpeg;base64,${JPEG.toString("base64")}` },
    };
    assert.ok(checkSendRequest(dataUrl as SendRequest, LIMITS).media);
    assert.equal(sniffMimetype(PNG), "image/png");
  });

  it("media URLs: http(s) only, kept for the owner to fetch", () => {
    const req = (url: string): SendRequest => ({ to: "4915123456", type: "document", media: { url } });
    assert.deepEqual(checkSendRequest(req("https://example.com/a.pdf"), LIMITS).media, {
      kind: "url",
      url: "https://example.com/a.pdf",
      mimetype: undefined,
      filename: undefined,
    });
    assert.equal(refusal(req("ftp://example.com/a.pdf")).type, "VALIDATION_ERROR");
    assert.equal(refusal(req("not a url")).type, "VALIDATION_ERROR");
  });

  it("location, contact and reaction drafts", () => {
    const loc = checkSendRequest(
      { to: "4915123456", type: "location", location: { latitude: 52.5, longitude: 13.4, name: "Berlin" } },
      LIMITS,
    );
    assert.deepEqual(loc.draft.location, {
      latitude: 52.5,
      longitude: 13.4,
      name: "Berlin",
      address: undefined,
    });
    const contact = checkSendRequest(
      { to: "4915123456", type: "contact", contact: { name: " Ann ", phoneNumber: "+4915199" } },
      LIMITS,
    );
    assert.deepEqual(contact.draft.contact, { name: "Ann", phoneNumber: "+4915199" });
    const reaction = checkSendRequest(
      { to: "4915123456", type: "reaction", replyTo: "true_x@c.us_ABC", emoji: "" },
      LIMITS,
    );
    assert.equal(reaction.draft.emoji, "");
  });

  it("the request digest tells the same message from another", () => {
    const a = requestDigest({ to: "1234567", type: "text", text: "a" }, null);
    assert.equal(a, requestDigest({ to: "1234567", type: "text", text: "a" }, null));
    assert.notEqual(a, requestDigest({ to: "1234567", type: "text", text: "b" }, null));
    assert.notEqual(
      requestDigest({ to: "1234567", type: "image" }, { data: PNG }),
      requestDigest({ to: "1234567", type: "image" }, { data: JPEG }),
    );
  });

  it("the request digest counts the media's mimetype and filename; requests without them keep their digest", () => {
    const digestOf = (req: SendRequest) => {
      const { draft, media } = checkSendRequest(req, LIMITS);
      return requestDigest(draft, media);
    };
    const png = PNG.toString("base64");
    const inline = (media: Record<string, string>) =>
      digestOf({ to: "1234567", type: "document", media: { base64: png, ...media } as SendRequest["media"] });
    const report = inline({ mimetype: "application/pdf", filename: "report.pdf" });
    assert.equal(report, inline({ mimetype: "Application/PDF; q=1", filename: "report.pdf" }), "same file");
    assert.notEqual(report, inline({ mimetype: "application/pdf", filename: "invoice.pdf" }));
    assert.notEqual(report, inline({ mimetype: "application/zip", filename: "report.pdf" }));
    assert.notEqual(report, inline({ mimetype: "application/pdf" }));
    const url = "https://example.com/a.png";
    const byUrl = (media: Record<string, string>) =>
      digestOf({ to: "1234567", type: "image", media: { url, ...media } as SendRequest["media"] });
    assert.notEqual(byUrl({ filename: "a.png" }), byUrl({ filename: "b.png" }));
    assert.notEqual(byUrl({ mimetype: "image/png" }), byUrl({ mimetype: "image/jpeg" }));
    assert.notEqual(byUrl({ mimetype: "image/png" }), byUrl({ filename: "image/png" }));
    assert.notEqual(byUrl({}), byUrl({ filename: "" }));
    // Digests stored before the mimetype and filename counted: requests without them still match.
    assert.equal(
      requestDigest({ to: "1234567", type: "text", text: "a" }, null),
      "dc77df2cec3551385368f362ab2aac30",
    );
    assert.equal(
      requestDigest({ to: "1234567", type: "image" }, { data: PNG }),
      "b45781face52ea00fdcf3ba379f153e3",
    );
    assert.equal(
      requestDigest({ to: "1234567", type: "image", caption: "c" }, { url }),
      "e08d10c7181b98bbce38c45c9b4a7120",
    );
    assert.equal(byUrl({}), requestDigest({ to: "1234567", type: "image" }, { url }));
  });

  it("receipts only move forward", () => {
    assert.ok(ackRank("delivered") > ackRank("sent"));
    assert.ok(ackRank("read") > ackRank("delivered"));
    assert.ok(ackRank("failed") > ackRank("sent") && ackRank("failed") < ackRank("delivered"));
  });
});
