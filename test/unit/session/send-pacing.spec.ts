// Sends of one account leave at least SEND_MIN_GAP_MS apart, in the order they asked; other accounts
// are not held up; the depth counts the waiting ones.
import { strict as assert } from "node:assert";
import { SendPacer } from "../../../src/session/send-pacing.ts";

describe("session/send-pacing", () => {
  it("spaces one account's sends by the gap (plus jitter), in order; another account goes at once", async () => {
    const depths: number[] = [];
    const pacer = new SendPacer({ minGapMs: 60, random: () => 0.5, onDepth: (d) => depths.push(d) });
    const start = Date.now();
    const left: [string, number][] = [];
    const send = (account: string, n: number) =>
      pacer.turn(account).then(() => left.push([`${account}${n}`, Date.now() - start]));
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

  it("a send that left late (a busy node) keeps the next one a whole gap behind it", async () => {
    const pacer = new SendPacer({ minGapMs: 60, random: () => 0 });
    const left: number[] = [];
    const a1 = pacer.turn("a").then(() => {
      left.push(Date.now());
      // The node is busy for 100 ms right after: a2's timer (due 60 ms after a1) fires late.
      const until = Date.now() + 100;
      while (Date.now() < until);
    });
    const a2 = pacer.turn("a").then(() => left.push(Date.now()));
    const a3 = pacer.turn("a").then(() => left.push(Date.now()));
    await Promise.all([a1, a2, a3]);
    assert.ok(left[1] - left[0] >= 95, `a2 left ${left[1] - left[0]} ms after a1`);
    // Planned at 120 ms, a3 would follow a late a2 by ~20 ms; it waits the gap after a2 instead.
    assert.ok(left[2] - left[1] >= 59, `a3 left ${left[2] - left[1]} ms after a2`);
  });

  it("a gap of 0 turns pacing off", async () => {
    const pacer = new SendPacer({ minGapMs: 0 });
    const start = Date.now();
    for (let i = 0; i < 20; i++) await pacer.turn("a");
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
    await Promise.all([first, second]);
  });
});
