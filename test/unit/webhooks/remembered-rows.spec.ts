// The rows a delivering node remembers instead of reading them back: a late word of an insert does not
// undo an attempt made meanwhile, and memory stays bounded in all queues, not only per queue.
import { strict as assert } from "node:assert";
import { queueKey } from "../../../src/store/webhook-outbox-repo.ts";
import { FORGET_PARKED_MS } from "../../../src/webhooks/queue-cursors.ts";
import { RememberedRows } from "../../../src/webhooks/remembered-rows.ts";
import { pendingRow } from "./pending-row.ts";

/** A row of endpoint wh_1 recorded after the node took the endpoint. */
const row = (accountId: string, seq: number) =>
  pendingRow("wh_1", accountId, seq, { at: new Date(Date.now() + 1000) });

/** What a first attempt refused with a 500 leaves on its row. */
const failed = (nextAttemptAt: Date) => ({
  attempts: 1,
  nextAttemptAt,
  lastError: "HTTP 500",
  lastStatusCode: 500,
});

describe("webhooks/remembered-rows", () => {
  it("a row tried and failed before its insert was told keeps its attempt count and backoff", () => {
    const rows = new RememberedRows();
    rows.claimed("wh_1");
    const r = row("a", 2);
    // The loop read the row back from the database and its attempt failed...
    const retryAt = new Date(Date.now() + 5000);
    rows.retried(r, failed(retryAt));
    // ...then the recording that inserted it answered.
    rows.inserted(r, false);
    const kept = rows.get("wh_1", "a", 2)!;
    assert.equal(kept.attempts, 1);
    assert.equal(kept.nextAttemptAt, retryAt);
    assert.equal(kept.lastError, "HTTP 500");
    // Told in the usual order (insert, then a failed attempt), the same.
    const s = row("a", 3);
    rows.inserted(s, false);
    rows.retried(s, failed(retryAt));
    assert.equal(rows.get("wh_1", "a", 3)!.attempts, 1);
  });

  it("is bounded in all queues: past the bound rows are not kept; handled and dropped rows make room", () => {
    const rows = new RememberedRows(3);
    rows.claimed("wh_1");
    for (const acc of ["a", "b", "c", "d"]) rows.inserted(row(acc, 1), false);
    assert.equal(rows.size, 3);
    assert.equal(rows.get("wh_1", "d", 1), undefined, "the fourth row is read from the database");
    rows.handled(row("a", 1));
    rows.inserted(row("d", 1), false);
    assert.ok(rows.get("wh_1", "d", 1));
    assert.equal(rows.size, 3);
    rows.dropped("wh_1");
    assert.equal(rows.size, 0);
    assert.equal(rows.get("wh_1", "b", 1), undefined);
  });

  it("rows resent are forgotten (read from the database again); a resend of an unknown seq forgets the queue's", () => {
    const rows = new RememberedRows();
    rows.claimed("wh_1");
    for (const seq of [1, 2, 3]) rows.inserted(row("a", seq), false);
    rows.inserted(row("b", 1), false);
    rows.retried(row("a", 1), failed(new Date(Date.now() + 60000)));
    rows.resent("wh_1", "a", [1, 3]);
    assert.equal(rows.get("wh_1", "a", 1), undefined, "the copy of its last attempt is gone");
    assert.ok(rows.get("wh_1", "a", 2));
    assert.equal(rows.size, 2);
    rows.resent("wh_1", "a", [null]);
    assert.equal(rows.get("wh_1", "a", 2), undefined);
    assert.ok(rows.get("wh_1", "b", 1), "other queues keep theirs");
    assert.equal(rows.size, 1);
  });

  it("does not remember a failed row of an endpoint it no longer holds", () => {
    const rows = new RememberedRows();
    rows.retried(row("a", 1), failed(new Date()));
    assert.equal(rows.size, 0);
  });

  it("a queue forgotten (idle) keeps nothing: its rows and the mark of what was delivered go", () => {
    const rows = new RememberedRows();
    rows.claimed("wh_1");
    rows.inserted(row("a", 1), false);
    rows.inserted(row("a", 2), false);
    rows.inserted(row("b", 1), false);
    rows.handled(row("a", 1));
    rows.forgetQueue(queueKey("wh_1", "a"));
    assert.equal(rows.size, 1, "only the other queue's row is left");
    assert.equal(rows.get("wh_1", "a", 2), undefined);
    rows.inserted(row("a", 1), false);
    assert.ok(rows.get("wh_1", "a", 1), "what was delivered there is no longer known");
  });

  it("a late word of a row older than a forgotten queue's time parked is not remembered: it is read", () => {
    let now = 0;
    const rows = new RememberedRows(undefined, () => now);
    rows.claimed("wh_1");
    const first = pendingRow("wh_1", "a", 1, { at: new Date(1000) });
    now = 2000;
    rows.handled(first); // delivered (its recording has not answered yet)
    now = 1000 + FORGET_PARKED_MS;
    rows.forgetQueue(queueKey("wh_1", "a"));
    rows.inserted(first, false); // the recording answers at last
    assert.equal(rows.get("wh_1", "a", 1), undefined, "not taken for pending");
    assert.equal(rows.size, 0);
  });
});
