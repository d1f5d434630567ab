// The pure parts of who records which workspace: the slot of a workspace, a node's share of slots, and
// whether a node that holds no slot of a workspace records its events that are not logged.
import { strict as assert } from "node:assert";
import { RECORDER_SLOTS, RecorderSlots, shareOf, slotOf } from "../../../src/webhooks/recorder-slots.ts";
import { waitFor } from "../../support/wait.ts";

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

  it("events not logged of a slot it does not hold: recorded when nobody else holds it, by a read made after the question", async () => {
    const reads: { answer: (held: Map<string, string>) => void }[] = [];
    const leases = {
      holder: "me/1",
      holders: () => new Promise<Map<string, string>>((answer) => reads.push({ answer })),
    };
    const quiet = { debug() {}, info() {}, warn() {}, error() {} };
    const slots = new RecorderSlots(
      leases as any,
      { leaseTtlMs: 1000, tickMs: 1000, slots: 4 },
      () => 1,
      async () => undefined,
      quiet as any,
    );
    const key = `slot-${slotOf("ws", 4)}`;
    const first = slots.recordsUnlogged("ws");
    await Promise.resolve();
    // Asked while the first read is on its way (it may have left before the slot was released): both
    // wait for the next read, which they share.
    const second = slots.recordsUnlogged("ws");
    const third = slots.recordsUnlogged("ws");
    assert.equal(reads.length, 1);
    reads[0].answer(new Map([[key, "other/1"]]));
    assert.equal(await first, false, "another node holds it");
    await waitFor(() => reads.length === 2, { what: "the next read" });
    reads[1].answer(new Map());
    assert.deepEqual(await Promise.all([second, third]), [true, true], "nobody holds it");
    assert.equal(reads.length, 2);
    const mine = slots.recordsUnlogged("ws");
    await waitFor(() => reads.length === 3, { what: "a third read" });
    reads[2].answer(new Map([[key, "me/1"]]));
    assert.equal(await mine, true, "this node's own lease (being claimed)");
  });
});
