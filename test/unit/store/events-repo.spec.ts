import { strict as assert } from "node:assert";
import { cursorOf, eventId, seqOfCursor } from "../../../src/store/events-repo.ts";

describe("store/events-repo: cursors and ids", () => {
  it("a cursor is the seq in decimal, read back exactly", () => {
    for (const seq of [0, 1, 42, 999_999_999_999_999]) assert.equal(seqOfCursor(cursorOf(seq)), seq);
    assert.equal(seqOfCursor(7), 7);
  });

  it("refuses anything else (leading zeros, signs, exponents, fractions, too long, other types)", () => {
    for (const bad of [
      "",
      "01",
      "-1",
      "+1",
      "1e3",
      "1.5",
      "abc",
      " 1",
      "1000000000000000",
      null,
      {},
      -1,
      1.5,
    ])
      assert.equal(seqOfCursor(bad), null, JSON.stringify(bad));
  });

  it("ids of one workspace sort by seq and stay apart from every other workspace's", () => {
    const ids = [1, 2, 10, 100, 1000].map((seq) => eventId("ws", seq));
    assert.deepEqual([...ids].sort(), ids);
    assert.ok(eventId("ws", 1) < `ws|~`);
    for (const other of ["w", "ws-1", "ws_1", "wsA", "ws1"]) {
      const id = eventId(other, 5);
      assert.ok(!(id > eventId("ws", 0) && id < "ws|~"), other);
    }
  });
});
