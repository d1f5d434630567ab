// Large request bodies in flight: at most UPLOADS_PER_KEY per key and UPLOADS_PER_GATEWAY in all, each
// slot free again once released (once, however often its release is called).
import { strict as assert } from "node:assert";
import { isLargeBody, TooManyUploadsError, UploadSlots } from "../../../src/gateway/upload-slots.ts";

describe("gateway/upload-slots", () => {
  it("bounds a key's slots and the gateway's, and frees a released slot once", () => {
    const slots = new UploadSlots(5, 2);
    const a1 = slots.take("a");
    slots.take("a");
    assert.throws(
      () => slots.take("a"),
      (e: TooManyUploadsError) => e.data.scope === "key",
    );
    slots.take("b");
    slots.take("b");
    slots.take("c");
    assert.throws(
      () => slots.take("d"),
      (e: TooManyUploadsError) => e.data.scope === "gateway",
    );
    a1();
    a1();
    assert.equal(slots.inFlight, 4, "released once");
    slots.take("a");
    assert.throws(() => slots.take("a"), TooManyUploadsError);
  });

  it("a body is large past the small size by its Content-Length, or when it has none (chunked)", () => {
    assert.equal(isLargeBody({ "content-length": "65536" }, 65536), false);
    assert.equal(isLargeBody({ "content-length": "65537" }, 65536), true);
    assert.equal(isLargeBody({ "transfer-encoding": "chunked" }, 65536), true);
    assert.equal(isLargeBody({}, 65536), false);
  });
});
