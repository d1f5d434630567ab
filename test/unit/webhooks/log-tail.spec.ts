// The log reader of a webhooks node with an in-memory log: events heard on the bus that follow its
// position are recorded without reading the log; a gap, or an event only in the log, is read from it.
import { strict as assert } from "node:assert";
import { LogTail } from "../../../src/webhooks/log-tail.ts";
import { waitFor } from "../../support/wait.ts";
import { loggedDoc, MemoryCursors, MemoryLog } from "./memory-log.ts";

const doc = loggedDoc;
const cursors = new MemoryCursors();

describe("webhooks/log-tail", () => {
  let log: MemoryLog;
  let recorded: number[];
  let tail: LogTail;

  beforeEach(async () => {
    log = new MemoryLog();
    recorded = [];
    cursors.stored.clear();
    const logger = { debug() {}, info() {}, warn() {}, error() {} };
    tail = new LogTail(
      log as any,
      cursors as any,
      async (docs) => void recorded.push(...docs.map((d) => d.seq)),
      // No poll during a test: only offers and wakes read.
      { pollMs: 60_000, discoverMs: 60_000 },
      logger as any,
    );
    await tail.start();
  });
  afterEach(() => tail.stop());

  it("records events that follow its position from the bus, reading the log not once", async () => {
    const reads = log.reads;
    for (const seq of [1, 2, 3]) {
      log.docs.push(doc(seq));
      tail.offer(doc(seq));
    }
    await waitFor(() => recorded.length === 3 && cursors.saved.get("ws") === 3);
    assert.deepEqual(recorded, [1, 2, 3]);
    assert.equal(log.reads, reads);
  });

  it("an event after a gap is read from the log, with what the gap held, in order", async () => {
    log.docs.push(doc(1), doc(2), doc(3));
    tail.offer(doc(3));
    await waitFor(() => recorded.length === 3);
    assert.deepEqual(recorded, [1, 2, 3]);
    assert.ok(log.reads > 0);
    // Caught up: the next one comes from the bus again.
    const reads = log.reads;
    log.docs.push(doc(4));
    tail.offer(doc(4));
    await waitFor(() => recorded.length === 4);
    assert.equal(log.reads, reads);
  });

  it("an event heard twice, or already read from the log, is recorded once", async () => {
    log.docs.push(doc(1), doc(2));
    await tail.drain("ws");
    tail.offer(doc(2));
    tail.offer(doc(1));
    log.docs.push(doc(3));
    tail.offer(doc(3));
    tail.offer(doc(3));
    await waitFor(() => recorded.includes(3));
    await tail.drain("ws");
    assert.deepEqual(recorded, [1, 2, 3]);
  });

  it("stores its position while it records the next run, in order; a drain ends once it is stored, after what was offered meanwhile", async () => {
    const saves: { seq: number; done: () => void }[] = [];
    const slowCursors = {
      saved: [] as number[],
      save(_ws: string, seq: number) {
        return new Promise<void>((resolve) =>
          saves.push({ seq, done: () => (slowCursors.saved.push(seq), resolve()) }),
        );
      },
      async all() {
        return new Map<string, number>();
      },
    };
    const logger = { debug() {}, info() {}, warn() {}, error() {} };
    const batched = new LogTail(
      log as any,
      slowCursors as any,
      async (docs) => void recorded.push(...docs.map((d) => d.seq)),
      { pollMs: 60_000, discoverMs: 60_000, batch: 2 },
      logger as any,
    );
    await batched.start();
    try {
      log.docs.push(doc(1), doc(2), doc(3), doc(4), doc(5));
      let drained = false;
      const draining = batched.drain("ws").then(() => (drained = true));
      // Every run is recorded although no position is stored yet.
      await waitFor(() => recorded.length === 5);
      assert.deepEqual(recorded, [1, 2, 3, 4, 5]);
      // One save at a time: the second waits for the first.
      await waitFor(() => saves.length === 1);
      assert.equal(saves[0].seq, 2);
      saves[0].done();
      await waitFor(() => saves.length === 2);
      assert.equal(saves[1].seq, 4);
      saves[1].done();
      await waitFor(() => saves.length === 3);
      assert.equal(drained, false, "the drain waits for its last position to be stored");
      // An event offered meanwhile finds the drain running: it is recorded by it, not by a poll.
      log.docs.push(doc(6));
      batched.offer(doc(6));
      saves[2].done();
      await waitFor(() => recorded.length === 6, { what: "the event offered while the position was stored" });
      await waitFor(() => saves.length === 4);
      assert.equal(saves[3].seq, 6);
      saves[3].done();
      await draining;
      assert.deepEqual(slowCursors.saved, [2, 4, 5, 6]);
    } finally {
      for (const s of saves) s.done();
      await batched.stop();
    }
  });

  it("an event not logged goes after the events heard before it, even those still to be read, and not after a gap", async () => {
    const order: (number | string)[] = [];
    const logger = { debug() {}, info() {}, warn() {}, error() {} };
    const ordered = new LogTail(
      log as any,
      new MemoryCursors() as any,
      async (docs) => void order.push(...docs.map((d) => d.seq)),
      { pollMs: 60_000, discoverMs: 60_000, batch: 2 },
      logger as any,
    );
    await ordered.start();
    try {
      // 1–3 in the log, only 3 heard (a gap to read first); then an event not logged.
      log.docs.push(doc(1), doc(2), doc(3));
      ordered.offer(doc(3));
      await ordered.afterKnown("ws", async () => void order.push("qr1"));
      assert.deepEqual(order, [1, 2, 3, "qr1"]);
      // 6 heard, but 4–5 not in the log yet (writes in flight): the next one does not wait for them.
      ordered.offer(doc(6));
      await ordered.afterKnown("ws", async () => void order.push("qr2"));
      assert.deepEqual(order, [1, 2, 3, "qr1", "qr2"]);
      log.docs.push(doc(4), doc(5), doc(6));
      await ordered.drain("ws");
      assert.deepEqual(order, [1, 2, 3, "qr1", "qr2", 4, 5, 6]);
    } finally {
      await ordered.stop();
    }
  });

  describe("polling", () => {
    let polled: LogTail;
    afterEach(() => polled?.stop());

    async function startPolled(discoverMs: number, records?: (ws: string) => boolean): Promise<void> {
      const logger = { debug() {}, info() {}, warn() {}, error() {} };
      polled = new LogTail(
        log as any,
        cursors as any,
        async (docs) => void recorded.push(...docs.map((d) => d.seq)),
        { pollMs: 20, discoverMs, records },
        logger as any,
      );
      await polled.start();
    }

    it("an event whose broadcast was missed is read at the next poll", async () => {
      log.docs.push(doc(1, "quiet"));
      await startPolled(60_000);
      await waitFor(() => recorded.length === 1);
      log.docs.push(doc(2, "quiet"), doc(3, "quiet"));
      await waitFor(() => recorded.length === 3);
      assert.deepEqual(recorded, [1, 2, 3]);
    });

    it("a workspace whose drain goes on (a busy one) holds up no other's poll", async () => {
      log.docs.push(doc(1, "busy"), doc(1, "other"));
      let release: () => void = () => undefined;
      const busyHeld = new Promise<void>((resolve) => (release = resolve));
      const logger = { debug() {}, info() {}, warn() {}, error() {} };
      polled = new LogTail(
        log as any,
        cursors as any,
        async (docs) => {
          if (docs[0].workspaceId === "busy") await busyHeld;
          recorded.push(...docs.map((d) => d.seq));
        },
        { pollMs: 20, discoverMs: 60_000 },
        logger as any,
      );
      try {
        await polled.start();
        await waitFor(() => recorded.includes(1), { what: "the first poll's read of the other workspace" });
        // Stored without a broadcast, while the busy workspace's drain goes on: only a poll finds it.
        log.docs.push(doc(2, "other"));
        await waitFor(() => recorded.includes(2), {
          what: "the other workspace read by a later poll",
          timeoutMs: 2000,
        });
      } finally {
        release();
      }
    });

    it("an event past an empty position is found by a discovery, not by every poll", async () => {
      log.docs.push(doc(1, "gap"));
      const started = Date.now();
      await startPolled(300);
      await waitFor(() => recorded.length === 1);
      // Position 2 was taken by a writer that died; 3 is stored.
      log.docs.push(doc(3, "gap"));
      await waitFor(() => recorded.length === 2);
      assert.deepEqual(recorded, [1, 3]);
      assert.ok(Date.now() - started >= 300, "found by the discovery, not by a poll at the next position");
    });

    it("a workspace another node records is neither read nor kept; taking it over starts at the stored position", async () => {
      const mine = new Set(["mine"]);
      log.docs.push(doc(1, "mine"), doc(1, "theirs"), doc(2, "theirs"));
      await startPolled(60_000, (ws) => mine.has(ws));
      await waitFor(() => recorded.length === 1);
      polled.offer(doc(3, "theirs"));
      polled.wake("theirs");
      await polled.drain("theirs");
      assert.deepEqual(recorded, [1], "only its own workspace recorded");
      assert.deepEqual([...new Set(log.readOf)], ["mine"], "the other's workspace never read");

      // The other node recorded "theirs" up to 2 and stopped: this node claims it, adopts, goes on.
      cursors.stored.set("theirs", 2);
      log.docs.push(doc(3, "theirs"));
      await polled.adopt();
      mine.add("theirs");
      await waitFor(() => recorded.length === 2);
      assert.deepEqual(recorded, [1, 3]);
      assert.equal(polled.position("theirs"), 3);
    });

    it("a workspace first heard while another node recorded it is read once this node takes it, with no discovery", async () => {
      const mine = new Set<string>();
      await startPolled(60_000, (ws) => mine.has(ws));
      // Its first events arrive while its slot is someone else's (or between holders): not recorded.
      log.docs.push(doc(1, "new"), doc(2, "new"));
      polled.offer(doc(1, "new"));
      polled.offer(doc(2, "new"));
      assert.deepEqual(recorded, []);
      // This node takes the slot; nobody stored a position for it: the next poll reads it from the start.
      await polled.adopt();
      mine.add("new");
      await waitFor(() => recorded.length === 2, {
        what: "the events of the workspace taken over",
        timeoutMs: 5000,
      });
      assert.deepEqual(recorded, [1, 2]);
    });
  });
});
