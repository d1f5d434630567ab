// The raw body's comma count, checked before a large body is parsed (src/gateway/http.ts).
import { strict as assert } from "node:assert";
import { moreCommasThan } from "../../../src/gateway/http.ts";

describe("gateway/http: moreCommasThan", () => {
  it("counts commas on the raw bytes, in strings or not, up to the bound only", () => {
    assert.equal(moreCommasThan(Buffer.from(""), 0), false);
    assert.equal(moreCommasThan(Buffer.from("[1,2,3]"), 2), false);
    assert.equal(moreCommasThan(Buffer.from("[1,2,3]"), 1), true);
    assert.equal(moreCommasThan(Buffer.from('{"a":"x,y"}'), 0), true, "a comma in a string counts");
    assert.equal(moreCommasThan(Buffer.from(`{"data":"${"QUJD".repeat(100_000)}"}`), 0), false, "base64");
    assert.equal(moreCommasThan(Buffer.from(",".repeat(1_000_000)), 65_536), true);
  });
});
