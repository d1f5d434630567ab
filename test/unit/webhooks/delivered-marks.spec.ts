// Delivered marks written in the background: marks queued while a write is in flight go out together in
// the next one, a row counts as delivered here until its mark landed, and a failed write is logged
// without holding anything back.
import { strict as assert } from "node:assert";
import { DeliveredMarks } from "../../../src/webhooks/delivered-marks.ts";

type Mark = { id: string; attempts: number; statusCode: number };

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
    const marks = new DeliveredMarks(store, { warn() {} }, () => landed++, 1);
    marks.add("r1", 1, 200);
    for (const id of ["r2", "r3", "r4"]) marks.add(id, id === "r3" ? 2 : 1, 200);
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

  it("a failed write is logged and its rows stop counting as unmarked", async () => {
    const store = new GatedStore();
    const warnings: string[] = [];
    const marks = new DeliveredMarks(store, { warn: (m: string) => warnings.push(m) }, () => undefined);
    store.failNext = true;
    marks.add("r1", 1, 200);
    store.finish();
    await marks.flushed();
    assert.equal(marks.has("r1"), false);
    assert.match(warnings.join("\n"), /marking 1 rows delivered failed: database is locked/);
  });
});
