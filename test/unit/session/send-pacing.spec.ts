// Sends of one account leave at least SEND_MIN_GAP_MS apart, in the order they asked; other accounts
// are not held up; the depth counts the waiting ones. A node's sends hold media a few at a time.
import { strict as assert } from "node:assert";
import { MediaGate, SendPacer } from "../../../src/session/send-pacing.ts";

describe("session/send-pacing", () => {
  it("spaces one account's sends by the gap (plus jitter), in order; another account goes at once", async () => {
    const depths: number[] = [];
    const pacer = new SendPacer({ minGapMs: 60, random: () => 0.5, onDepth: (d) => depths.push(d) });
    const start = Date.now();
    const left: [string, number][] = [];
    const send = (account: string, n: number) =>
      pacer.turn(account).then((slot) => {
        left.push([`${account}${n}`, Date.now() - start]);
        slot.leave(true);
      });
    await Promise.all([send("a", 1), send("a", 2), send("a", 3), send("b", 1)]);
    assert.deepEqual(
      left.map(([name]) => name),
      ["a1", "b1", "a2", "a3"],
    );
    const at = Object.fromEntries(left);
    assert.ok(at.b1 < 40, `b1 left at ${at.b1} ms`);
    // Each gap is 60 ms plus a quarter of it (half of the half-gap jitter): 75 ms.
    assert.ok(at.a2 >= 74, `a2 left at ${at.a2} ms`);
    assert.ok(at.a3 - at.a2 >= 70, `a3 − a2 = ${at.a3 - at.a2} ms`);
    assert.equal(Math.max(...depths), 2);
    assert.equal(pacer.depth, 0);
  });

  it("the gap counts from when the send ahead reached the engine, not from when it was planned", async () => {
    const pacer = new SendPacer({ minGapMs: 60, random: () => 0 });
    const handed: number[] = [];
    const sendAfter = (delayMs: number) =>
      pacer.turn("a").then(async (slot) => {
        // A slow write (the record's `sending`) before the engine is called.
        await new Promise((r) => setTimeout(r, delayMs));
        handed.push(Date.now());
        slot.leave(true);
      });
    await Promise.all([sendAfter(100), sendAfter(0), sendAfter(0)]);
    // Planned at 60 and 120 ms, a2 would reach the engine 40 ms before a1 did; each waits the gap.
    assert.ok(handed[1] - handed[0] >= 59, `a2 reached the engine ${handed[1] - handed[0]} ms after a1`);
    assert.ok(handed[2] - handed[1] >= 59, `a3 reached the engine ${handed[2] - handed[1]} ms after a2`);
  });

  it("a send that gives up before the engine lets the next one go without a gap; leaving twice is nothing", async () => {
    const pacer = new SendPacer({ minGapMs: 1000, random: () => 0 });
    const first = await pacer.turn("a");
    const second = pacer.turn("a");
    const started = Date.now();
    first.leave(false);
    first.leave(true); // too late: it gave up
    (await second).leave(true);
    assert.ok(Date.now() - started < 100, "the next went at once");
  });

  it("a gap of 0 turns pacing off", async () => {
    const pacer = new SendPacer({ minGapMs: 0 });
    const start = Date.now();
    for (let i = 0; i < 20; i++) (await pacer.turn("a")).leave(true);
    assert.ok(Date.now() - start < 50);
  });

  it("a send that would wait longer than maxWaitMs is refused (429 SEND_QUEUE_FULL) and takes no slot", async () => {
    const pacer = new SendPacer({ minGapMs: 1000, maxWaitMs: 1500, random: () => 0 });
    const now = Date.now();
    const first = pacer.turn("a", now); // leaves at once
    const second = pacer.turn("a", now); // waits 1000 ms
    await assert.rejects(pacer.turn("a", now), (err: any) => {
      assert.equal(err.type, "SEND_QUEUE_FULL");
      assert.equal(err.code, 429);
      assert.equal(err.data.retryAfter, 2);
      return true;
    });
    assert.equal(pacer.depth, 1, "the refused send is not queued");
    (await first).leave(true);
    (await second).leave(true);
  });

  it("with 1024 idle lanes or more, two quick sends of one account still leave the gap apart", async () => {
    const gap = 100;
    const pacer = new SendPacer({ minGapMs: gap, random: () => 0 });
    const start = Date.now();
    // Enough accounts for the pacer to forget idle lanes, each of which has sent once.
    for (let i = 0; i < 1024; i++) (await pacer.turn(`acc_${i}`, start)).leave(true);
    // Later, every lane idle (acc_0's too): acc_0 asks twice, back to back.
    const later = start + 10 * gap;
    const first = pacer.turn("acc_0", later);
    const second = pacer.turn("acc_0", later);
    (await first).leave(true);
    const firstLeft = Date.now();
    (await second).leave(true);
    const apart = Date.now() - firstLeft;
    assert.ok(apart >= gap - 1, `the second send left ${apart} ms after the first`);
  });

  it("an unbounded turn (a resumed send) is queued however long the wait, in its place, never refused", async () => {
    const pacer = new SendPacer({ minGapMs: 60, maxWaitMs: 0, random: () => 0 });
    const left: string[] = [];
    const go = (name: string, slot: Promise<{ leave(sent: boolean): void }>) =>
      slot.then((s) => {
        left.push(name);
        s.leave(true);
      });
    const first = go("first", pacer.turn("a"));
    await assert.rejects(pacer.turn("a"), { type: "SEND_QUEUE_FULL" }, "a bounded one would wait: refused");
    const resumed = [1, 2, 3].map((n) => go(`resumed${n}`, pacer.turn("a", Date.now(), { unbounded: true })));
    assert.throws(() => pacer.admit("a"), { type: "SEND_QUEUE_FULL" }, "admit sees the queue ahead");
    await Promise.all([first, ...resumed]);
    assert.deepEqual(left, ["first", "resumed1", "resumed2", "resumed3"]);
  });

  it("admit refuses what turn would refuse, and takes no slot", async () => {
    const pacer = new SendPacer({ minGapMs: 1000, maxWaitMs: 1500, random: () => 0 });
    const now = Date.now();
    pacer.admit("a", now);
    const first = pacer.turn("a", now);
    const second = pacer.turn("a", now);
    pacer.admit("b", now); // another account's queue is empty
    assert.throws(() => pacer.admit("a", now), {
      type: "SEND_QUEUE_FULL",
      data: { accountId: "a", retryAfter: 2 },
    });
    assert.equal(pacer.depth, 1);
    (await first).leave(false);
    (await second).leave(false);
    new SendPacer({ minGapMs: 0, maxWaitMs: 0 }).admit("a"); // pacing off: nothing refused
  });

  describe("MediaGate", () => {
    it("one account holds at most `perAccount` places: another account's send passes its waiting ones", async () => {
      const gate = new MediaGate(4, 2);
      const burst = [await gate.enter("busy"), await gate.enter("busy")];
      const order: string[] = [];
      const third = gate.enter("busy").then((leave) => (order.push("busy"), leave));
      const other = await gate.enter("other");
      order.push("other");
      assert.deepEqual([order, gate.inUse], [["other"], 3]);
      burst[0]!();
      (await third)();
      assert.deepEqual(order, ["other", "busy"]);
      burst[1]!();
      other();
      assert.equal(gate.inUse, 0);
    });

    it("lets `limit` sends hold media at once, the next in arrival order as each leaves; leaving twice is nothing", async () => {
      const gate = new MediaGate(2, 2);
      const a = await gate.enter("x");
      const b = await gate.enter("y");
      const order: string[] = [];
      const c = gate.enter("x").then((leave) => (order.push("c"), leave));
      const d = gate.enter("y").then((leave) => (order.push("d"), leave));
      await Promise.resolve();
      assert.deepEqual([order, gate.inUse], [[], 2]);
      a();
      a();
      (await c)();
      b();
      (await d)();
      assert.deepEqual([order, gate.inUse], [["c", "d"], 0]);
    });

    it("a wait past its deadline is refused with the caller's error and loses its place", async () => {
      const gate = new MediaGate(1);
      const first = await gate.enter("x");
      await assert.rejects(
        gate.enter("x", Date.now() + 20, () => new Error("too late")),
        /too late/,
      );
      const next = gate.enter("x", Date.now() + 1000);
      first();
      (await next)();
      assert.equal(gate.inUse, 0);
    });
  });
});
