import { strict as assert } from "node:assert";
import { pageCursorOf, pagePositionOf } from "../../../src/store/page-cursor.ts";

describe("store/page-cursor", () => {
  it("round-trips a position through a url-safe cursor", () => {
    const at = new Date("2026-12-05T17:00:00.123Z");
    const cursor = pageCursorOf(at, "wh_1|acc_2|000000000003");
    assert.match(cursor, /^[A-Za-z0-9_-]+$/);
    assert.deepEqual(pagePositionOf(cursor), { at, id: "wh_1|acc_2|000000000003" });
  });

  it("reads anything else as null", () => {
    for (const bad of ["$$", "bm90LWEtY3Vyc29y", Buffer.from('["x","y"]').toString("base64url"), ""])
      assert.equal(pagePositionOf(bad), null, bad);
  });
});
