// The raw body's count of what starts or separates JSON values, checked before a large body is parsed
// (src/gateway/http.ts).
import { strict as assert } from "node:assert";
import { moreValuesThan } from "../../../src/gateway/http.ts";

describe("gateway/http: moreValuesThan", () => {
  it("counts commas and opening brackets and braces on the raw bytes, in strings or not, up to the bound only", () => {
    assert.equal(moreValuesThan(Buffer.from(""), 0), false);
    assert.equal(moreValuesThan(Buffer.from("1,2,3"), 2), false);
    assert.equal(moreValuesThan(Buffer.from("[1,2,3]"), 2), true, "the array counts too");
    assert.equal(moreValuesThan(Buffer.from("[1,2,3]"), 3), false);
    assert.equal(moreValuesThan(Buffer.from('{"a":"x,y"}'), 1), true, "a comma in a string counts");
    assert.equal(moreValuesThan(Buffer.from(`"${"QUJD".repeat(100_000)}"`), 0), false, "base64");
    assert.equal(moreValuesThan(Buffer.from(",".repeat(1_000_000)), 65_536), true);
    assert.equal(
      moreValuesThan(Buffer.from("[".repeat(40_000) + "{".repeat(40_000)), 65_536),
      true,
      "nested",
    );
    assert.equal(moreValuesThan(Buffer.from("[".repeat(30_000) + "{".repeat(30_000)), 65_536), false);
  });
});
