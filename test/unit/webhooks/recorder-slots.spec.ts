// The pure parts of who records which workspace: the slot of a workspace and a node's share of slots.
import { strict as assert } from "node:assert";
import { RECORDER_SLOTS, shareOf, slotOf } from "../../../src/webhooks/recorder-slots.ts";

describe("webhooks/recorder-slots", () => {
  it("a workspace's slot is stable and in range, and workspaces spread over the slots", () => {
    assert.equal(slotOf("ws1"), slotOf("ws1"));
    const counts = new Array<number>(RECORDER_SLOTS).fill(0);
    for (let i = 0; i < 1600; i++) {
      const slot = slotOf(`ws_${i}`);
      assert.ok(Number.isInteger(slot) && slot >= 0 && slot < RECORDER_SLOTS);
      counts[slot]++;
    }
    // 100 per slot on average: none empty, none holding three times its part.
    assert.ok(Math.min(...counts) > 0 && Math.max(...counts) < 300, counts.join(","));
    assert.ok(slotOf("a", 4) < 4);
  });

  it("a node's share is the slots over the nodes it sees, rounded up; alone (or seeing none) all", () => {
    assert.equal(shareOf(16, 0), 16);
    assert.equal(shareOf(16, 1), 16);
    assert.equal(shareOf(16, 2), 8);
    assert.equal(shareOf(16, 3), 6);
    assert.equal(shareOf(16, 20), 1);
  });
});
