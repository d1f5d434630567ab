// What a simulated incoming message carries: its media fields are checked (the route's rule only checks
// that media is an object), so a malformed one is a 422, not an internal error.
import { strict as assert } from "node:assert";
import { simulatedIncomingOf } from "../../../src/accounts/params.ts";
import type { SimulateParams } from "../../../src/accounts/types.ts";

const base: SimulateParams = { workspaceId: "ws", accountId: "acc", action: "message", from: "15551234567" };

function refusal(media: unknown): { type: string; code: number; field: string } {
  try {
    simulatedIncomingOf({ ...base, media } as SimulateParams);
  } catch (err) {
    const e = err as { type: string; code: number; data: { field: string }[] };
    return { type: e.type, code: e.code, field: e.data[0].field };
  }
  assert.fail(`accepted ${JSON.stringify(media)}`);
}

describe("accounts/params simulatedIncomingOf", () => {
  it("decodes a media file given as base64 with its mimetype", () => {
    const out = simulatedIncomingOf({
      ...base,
      type: "document",
      media: { base64: Buffer.from("hello").toString("base64"), mimetype: "text/plain", filename: "a.txt" },
    });
    assert.equal(out.media?.data.toString(), "hello");
    assert.deepEqual(
      [out.type, out.media?.mimetype, out.media?.filename],
      ["document", "text/plain", "a.txt"],
    );
  });

  it("media without base64 or mimetype, or with a filename that is not a string → VALIDATION_ERROR 422", () => {
    assert.deepEqual(refusal({}), { type: "VALIDATION_ERROR", code: 422, field: "media" });
    assert.deepEqual(refusal({ base64: "aGk=" }), { type: "VALIDATION_ERROR", code: 422, field: "media" });
    assert.deepEqual(refusal({ base64: 5, mimetype: "text/plain" }), {
      type: "VALIDATION_ERROR",
      code: 422,
      field: "media",
    });
    assert.deepEqual(refusal({ base64: "aGk=", mimetype: "text/plain", filename: { toString: 0 } }), {
      type: "VALIDATION_ERROR",
      code: 422,
      field: "media.filename",
    });
  });
});
