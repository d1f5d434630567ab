// Delivered marks written in the background: marks queued while a write is in flight go out together in
// the next one, a row counts as delivered here until its mark landed, and a failed write is written
// again after a back-off until it lands, its endpoint is dropped, or the marks are closed.
import { strict as assert } from "node:assert";
import { DeliveredMarks, type DeliveredMark } from "../../../src/webhooks/delivered-marks.ts";
import { waitFor } from "../../support/wait.ts";

type Mark = { id: string; attempts: number; statusCode: number };

function mark(id: string, attempts = 1, endpointId = "wh_1"): DeliveredMark {
  return { id, endpointId, attempts, statusCode: 200 };
}

/** A store whose writes finish when the test says so. */
class GatedStore {
  writes: Mark[][] = [];
  private release: (() => void)[] = [];
  failNext = false;
  async markDelivered(marks: Mark[]): Promise<void> {
    this.writes.push(marks.map(({ id, attempts, statusCode }) => ({ id, attempts, statusCode })));
    await new Promise<void>((resolve) => this.release.push(resolve));
    if (this.failNext) {
      this.failNext = false;
      throw new Error("database is locked");
    }
  }
  /** Lets every write in flight finish. */
  finish(): void {
    for (const r of this.release.splice(0)) r();
  }
}

describe("webhooks/delivered-marks", () => {
  it("marks queued during a write go out together in the next one", async () => {
    const store = new GatedStore();
    let landed = 0;
    const marks = new DeliveredMarks(store, { warn() {} }, () => landed++, { maxWriters: 1 });
    marks.add(mark("r1"));
    for (const id of ["r2", "r3", "r4"]) marks.add(mark(id, id === "r3" ? 2 : 1));
    assert.deepEqual(
      store.writes.map((w) => w.map((m) => m.id)),
      [["r1"]],
    );
    assert.ok(marks.has("r1") && marks.has("r4"));
    store.finish();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(store.writes[1], [
      { id: "r2", attempts: 1, statusCode: 200 },
      { id: "r3", attempts: 2, statusCode: 200 },
      { id: "r4", attempts: 1, statusCode: 200 },
    ]);
    assert.equal(marks.has("r1"), false);
    assert.equal(marks.has("r2"), true, "delivered here until its mark landed");
    store.finish();
    await marks.flushed();
    assert.equal(marks.size, 0);
    assert.equal(landed, 2);
  });

  it("a failed write is logged and written again after a back-off; its rows count as unmarked until it lands", async () => {
    const store = new GatedStore();
    const warnings: string[] = [];
    let landed = 0;
    const marks = new DeliveredMarks(store, { warn: (m: string) => warnings.push(m) }, () => landed++, {
      retry: { baseMs: 40, maxMs: 40 },
    });
    store.failNext = true;
    marks.add(mark("r1"));
    store.finish();
    await waitFor(() => landed === 1, { what: "the failed write" });
    assert.match(
      warnings.join("\n"),
      /marking 1 rows delivered failed: database is locked; writing them again in \d+ ms/,
    );
    assert.equal(marks.has("r1"), true, "still delivered here: a scan must not take the row for pending");
    await waitFor(() => store.writes.length === 2, { what: "the write again" });
    assert.deepEqual(store.writes[1], [{ id: "r1", attempts: 1, statusCode: 200 }]);
    store.finish();
    assert.equal(await marks.flushed(), true);
    assert.equal(marks.has("r1"), false);
  });

  it("a flush waits a bounded time for marks that keep failing, and close gives them up", async () => {
    let writes = 0;
    const store = {
      async markDelivered() {
        writes++;
        throw new Error("database is locked");
      },
    };
    const marks = new DeliveredMarks(store, { warn() {} }, () => undefined, {
      retry: { baseMs: 10, maxMs: 20 },
    });
    marks.add(mark("r1"));
    const t0 = Date.now();
    assert.equal(await marks.flushed(150), false);
    assert.ok(Date.now() - t0 < 1000, `flushed answered after ${Date.now() - t0} ms`);
    assert.ok(writes >= 2, `written ${writes} times`);
    marks.close();
    assert.equal(marks.size, 0);
    assert.equal(await marks.flushed(), true);
    const closedAt = writes;
    // Nothing to wait for: checks that no write comes (the back-off here is 10-20 ms).
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(writes, closedAt, "no write after close");
  });
});
