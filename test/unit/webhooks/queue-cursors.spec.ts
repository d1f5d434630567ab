// Queue cursors: a queue found empty is parked out of the delivery loop's walk, woken by a word of a
// new row or a scan, and forgotten once parked for long (a later row looks its head up again).
import { strict as assert } from "node:assert";
import { FORGET_PARKED_MS, QueueCursors, skipFinished } from "../../../src/webhooks/queue-cursors.ts";
import { queueKey } from "../../../src/store/webhook-outbox-repo.ts";

const walked = (cursors: QueueCursors) => [...cursors.entries()].map(([key]) => key);

describe("webhooks/queue-cursors", () => {
  it("a rewind to a resent row goes back to where the cursor was once past it; a second walks by reads", () => {
    const cursors = new QueueCursors();
    const a = queueKey("ep", "acc_a");
    cursors.startAt({ endpointId: "ep", accountId: "acc_a", seq: 1 });
    const cursor = cursors.get(a)!;
    cursor.next = 500;
    cursors.park(a);
    cursors.rewind(a, 7);
    assert.deepEqual(walked(cursors), [a], "due again");
    assert.equal(cursor.next, 7);
    skipFinished(cursor);
    assert.equal(cursor.next, 7, "the resent row first");
    cursor.next = 8; // sent
    skipFinished(cursor);
    assert.equal(cursor.next, 500, "then where it was");
    assert.equal(cursor.skip, undefined);

    cursors.rewind(a, 10);
    cursors.rewind(a, 3);
    assert.equal(cursor.next, 3);
    assert.equal(cursor.skip, undefined, "two rewinds: rows in between may be pending again");
    cursor.next = 4;
    skipFinished(cursor);
    assert.equal(cursor.next, 4);
    cursor.next = 40;
    cursors.rewind(a, 20, true);
    assert.equal(cursor.skip, undefined, "several rows resent at once: a walk by reads");
    cursors.rewind(queueKey("ep", "unknown"), 1); // no cursor: nothing to do
  });

  it("a parked queue leaves the walk and keeps its place; a row heard of brings it back due", () => {
    let now = 1000;
    const cursors = new QueueCursors(undefined, () => now);
    const a = queueKey("ep", "acc_a");
    const b = queueKey("ep", "acc_b");
    cursors.startAt({ endpointId: "ep", accountId: "acc_a", seq: 1 });
    cursors.startAt({ endpointId: "ep", accountId: "acc_b", seq: 1 });
    cursors.get(a)!.next = 4;
    cursors.park(a);
    assert.deepEqual(walked(cursors), [b]);
    assert.deepEqual(cursors.size, { walked: 1, parked: 1 });
    assert.equal(cursors.has(a), true);
    assert.equal(cursors.get(a)!.wakeAt, Infinity);
    now = 2000;
    cursors.heardOf({ endpointId: "ep", accountId: "acc_a", seq: 4 });
    assert.deepEqual(walked(cursors), [b, a]);
    assert.deepEqual(
      { ...cursors.get(a)!, heard: 0 },
      {
        endpointId: "ep",
        accountId: "acc_a",
        next: 4,
        wakeAt: 2000,
        heard: 0,
      },
    );
    assert.deepEqual(cursors.takeUnknown(), [], "a parked queue is known");
  });

  it("a scan's pending row wakes a parked queue from that row; a start replaces a parked cursor", () => {
    const cursors = new QueueCursors();
    const a = queueKey("ep", "acc_a");
    cursors.startAt({ endpointId: "ep", accountId: "acc_a", seq: 5 });
    cursors.park(a);
    cursors.wake(a, 3);
    assert.deepEqual(walked(cursors), [a]);
    assert.equal(cursors.get(a)!.next, 3);
    assert.equal(cursors.get(a)!.wakeAt, 0);
    cursors.park(a);
    cursors.startAt({ endpointId: "ep", accountId: "acc_a", seq: 7 });
    assert.deepEqual(cursors.size, { walked: 1, parked: 0 });
    assert.equal(cursors.get(a)!.next, 7);
  });

  it("queues parked longer than FORGET_PARKED_MS are forgotten at a later park, and said so", () => {
    let now = 0;
    const forgotten: string[] = [];
    const cursors = new QueueCursors(
      (key) => forgotten.push(key),
      () => now,
    );
    for (const acc of ["acc_a", "acc_b", "acc_c"])
      cursors.startAt({ endpointId: "ep", accountId: acc, seq: 2 });
    cursors.park(queueKey("ep", "acc_a"));
    now = 1000;
    cursors.park(queueKey("ep", "acc_b"));
    now = FORGET_PARKED_MS + 500;
    cursors.park(queueKey("ep", "acc_c"));
    assert.deepEqual(forgotten, [queueKey("ep", "acc_a")]);
    assert.equal(cursors.has(queueKey("ep", "acc_a")), false);
    assert.deepEqual(cursors.size, { walked: 0, parked: 2 });
    // A row heard of in a forgotten queue: its first pending row is looked up again.
    cursors.heardOf({ endpointId: "ep", accountId: "acc_a", seq: 3 });
    assert.deepEqual(cursors.takeUnknown(), [{ endpointId: "ep", accountId: "acc_a" }]);
  });

  it("an endpoint no longer held drops its parked queues too", () => {
    const cursors = new QueueCursors();
    cursors.startAt({ endpointId: "ep1", accountId: "acc_a", seq: 1 });
    cursors.startAt({ endpointId: "ep2", accountId: "acc_a", seq: 1 });
    cursors.park(queueKey("ep1", "acc_a"));
    cursors.park(queueKey("ep2", "acc_a"));
    cursors.dropEndpoint("ep1");
    assert.equal(cursors.has(queueKey("ep1", "acc_a")), false);
    assert.equal(cursors.has(queueKey("ep2", "acc_a")), true);
  });

  it("a cursor replaced while it was read through is not parked for the old one", () => {
    const cursors = new QueueCursors();
    const a = queueKey("ep", "acc_a");
    cursors.startAt({ endpointId: "ep", accountId: "acc_a", seq: 2 });
    const read = cursors.get(a)!;
    cursors.startAt({ endpointId: "ep", accountId: "acc_a", seq: 5 });
    cursors.park(a, read);
    assert.deepEqual(walked(cursors), [a]);
    assert.equal(cursors.get(a)!.next, 5);
    assert.equal(cursors.get(a)!.wakeAt, 0);
  });
});
