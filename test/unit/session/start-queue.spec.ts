// The per-node start queue: never more than `concurrency` starts at once, FIFO, cancellable while
// waiting, and a failing start frees its slot; turns for starts made outside it (engine restarts).
import { strict as assert } from "node:assert";
import { StartQueue } from "../../../src/session/start-queue.ts";

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { open, opened };
}

const tick = () => new Promise((r) => setImmediate(r));

describe("session/start-queue", () => {
  it("runs at most `concurrency` starts at once, in arrival order", async () => {
    const q = new StartQueue(2);
    const gates = [gate(), gate(), gate(), gate()];
    const began: number[] = [];
    gates.forEach((g, i) =>
      q.push(`a${i}`, async () => {
        began.push(i);
        await g.opened;
      }),
    );
    await tick();
    assert.deepEqual(began, [0, 1]);
    assert.equal(q.running, 2);
    assert.equal(q.pending, 2);
    gates[1].open();
    await tick();
    await tick();
    assert.deepEqual(began, [0, 1, 2]);
    gates[0].open();
    gates[2].open();
    await tick();
    await tick();
    assert.deepEqual(began, [0, 1, 2, 3]);
    gates[3].open();
    await tick();
    await tick();
    assert.equal(q.running, 0);
    assert.equal(q.pending, 0);
  });

  it("cancels a waiting start, and a failing start frees its slot", async () => {
    const q = new StartQueue(1);
    const g = gate();
    const began: string[] = [];
    q.push("a", async () => {
      began.push("a");
      await g.opened;
      throw new Error("boom");
    });
    q.push("b", async () => void began.push("b"));
    q.push("c", async () => void began.push("c"));
    assert.equal(q.cancel("b"), true);
    assert.equal(q.cancel("b"), false);
    g.open();
    await tick();
    await tick();
    await tick();
    assert.deepEqual(began, ["a", "c"]);
  });

  it("a second push of the same key replaces the waiting one", async () => {
    const q = new StartQueue(1);
    const g = gate();
    const ran: string[] = [];
    q.push("busy", () => g.opened);
    q.push("x", async () => void ran.push("first"));
    q.push("x", async () => void ran.push("second"));
    assert.equal(q.pending, 1);
    g.open();
    await tick();
    await tick();
    assert.deepEqual(ran, ["second"]);
  });

  it("a turn waits like a start, in arrival order, and holds its slot until ended", async () => {
    const q = new StartQueue(1);
    const g = gate();
    const order: string[] = [];
    q.push("first", async () => {
      order.push("first");
      await g.opened;
    });
    const turn = q.turn("restart").then((end) => {
      order.push("turn");
      return end;
    });
    q.push("after", async () => void order.push("after"));
    await tick();
    assert.deepEqual(order, ["first"]);
    g.open();
    const end = await turn;
    await tick();
    assert.deepEqual(order, ["first", "turn"]);
    assert.equal(q.running, 1);
    end();
    await tick();
    await tick();
    assert.deepEqual(order, ["first", "turn", "after"]);
    assert.equal(q.running, 0);
  });
});
