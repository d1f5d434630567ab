// The delivery loop's ordering rules with in-memory repositories and a real local HTTP receiver:
// cursors walk each (endpoint, account) queue in seq order whatever order this node hears of rows in.
import { strict as assert } from "node:assert";
import { createServer, type Server } from "node:http";
import { AddressPolicy } from "../../../src/net/address-guard.ts";
import { DeliveryLoop } from "../../../src/webhooks/delivery-loop.ts";
import {
  queueKey,
  slotId,
  type FailureUpdate,
  type QueueHead,
  type RecordResult,
} from "../../../src/store/webhook-outbox-repo.ts";
import type { EndpointDoc, OutboxDoc } from "../../../src/webhooks/types.ts";
import { waitFor } from "../../support/wait.ts";
import { pendingRow } from "./pending-row.ts";

class MemoryOutbox {
  rows = new Map<string, OutboxDoc>();
  /** Positions read back with `at`, and scans made. */
  reads: number[] = [];
  scans = 0;
  /** When set, what `pendingHeads` answers (a read that raced a mark). */
  staleHeads: QueueHead[] | null = null;
  /** When set, a delivered mark waits for it. */
  markGate: Promise<void> | null = null;
  /** When set, `at` of this position reads the row at once and answers only once `gate` resolves. */
  slowRead: { seq: number; gate: Promise<void> } | null = null;
  /** Records a row as this node's own insert: the answer carries the row. */
  insert(endpointId: string, accountId: string, seq: number, eventId: string): RecordResult {
    const r = this.put(endpointId, accountId, seq, eventId);
    return { ...r, doc: { ...this.rows.get(slotId(endpointId, accountId, seq))! } };
  }
  put(endpointId: string, accountId: string, seq: number, eventId: string): RecordResult {
    this.rows.set(slotId(endpointId, accountId, seq), pendingRow(endpointId, accountId, seq, { eventId }));
    return { endpointId, accountId, seq, inserted: true };
  }
  /** When set, a scan of every queue (no endpoint given) answers only once it resolves. */
  scanGate: Promise<void> | null = null;
  /** Openers of the gates tests shut: afterEach opens what a failed test left shut, so that stopping
   * the loop does not wait on it. */
  private readonly openers: (() => void)[] = [];
  gate(): { shut: Promise<void>; open: () => void } {
    let open!: () => void;
    const shut = new Promise<void>((resolve) => (open = resolve));
    this.openers.push(open);
    return { shut, open };
  }
  openGates(): void {
    for (const open of this.openers) open();
  }
  async pendingHeads(endpointId?: string, accountId?: string): Promise<QueueHead[]> {
    this.scans++;
    if (!endpointId) await this.scanGate;
    if (this.staleHeads) return this.staleHeads;
    const heads = new Map<string, QueueHead>();
    for (const r of this.rows.values()) {
      if (r.status !== "pending" || (endpointId && r.endpointId !== endpointId)) continue;
      if (accountId && r.accountId !== accountId) continue;
      const key = queueKey(r.endpointId, r.accountId);
      if (!heads.has(key) || heads.get(key)!.seq > r.seq) heads.set(key, { ...r });
    }
    return [...heads.values()];
  }
  async at(endpointId: string, accountId: string, seq: number) {
    this.reads.push(seq);
    const row = this.rows.get(slotId(endpointId, accountId, seq)) ?? null;
    if (this.slowRead?.seq !== seq) return row;
    // As a database answers: what the row was when the read was made.
    const read = row && { ...row };
    await this.slowRead.gate;
    return read;
  }
  /** Delivered-mark writes still to fail (the database's answer past the repo's retries). */
  failMarks = 0;
  async markDelivered(marks: { id: string; attempts: number }[]) {
    await this.markGate;
    if (this.failMarks > 0) {
      this.failMarks--;
      throw new Error("database is locked");
    }
    for (const { id, attempts } of marks)
      Object.assign(this.rows.get(id)!, { status: "delivered", attempts });
  }
  /** When set, a failure write it answers true for throws (past the repo's retries). */
  failFailureWrite: ((f: FailureUpdate) => boolean) | null = null;
  /** Failure writes asked for. */
  failureWrites: FailureUpdate[] = [];
  async markFailed(id: string, f: FailureUpdate) {
    this.failureWrites.push(f);
    if (this.failFailureWrite?.(f)) throw new Error("database is locked");
    const row = this.rows.get(id);
    if (row?.status !== "pending") return false;
    Object.assign(row, {
      attempts: f.attempts,
      lastError: f.error,
      lastStatusCode: f.statusCode,
      ...(f.nextAttemptAt ? { nextAttemptAt: f.nextAttemptAt } : { status: "dead" }),
    });
    return true;
  }
  /** Prunes asked for; when `pruneGate` is set, a prune answers only once it resolves. */
  prunes = 0;
  pruneGate: Promise<void> | null = null;
  async prune() {
    this.prunes++;
    await this.pruneGate;
    return 0;
  }
  async removeEndpoint() {}
}

const leases = {
  async claim(endpointId: string) {
    return { endpointId, term: 1, validUntil: Date.now() + 60000 };
  },
  async renew() {
    return true;
  },
  async release() {},
};

describe("webhooks/delivery-loop", () => {
  let server: Server;
  let received: string[];
  let endpoint: EndpointDoc;
  let outbox: MemoryOutbox;
  let loop: DeliveryLoop;

  /** What the loop logged as warnings. */
  let warnings: string[];
  /** While set, the receiver answers the event `id` only once `until` resolves (an attempt in flight). */
  let heldAnswer: { id: string; until: Promise<void> } | null;

  function makeLoop(
    overrides: {
      scanMs?: number;
      leases?: Omit<typeof leases, "claim"> & {
        claim(endpointId: string): Promise<{ endpointId: string; term: number; validUntil: number }>;
      };
      findById?: (id: string) => Promise<EndpointDoc | null>;
      backoff?: { baseMs: number; maxMs: number };
      retentionMs?: number;
      concurrency?: number;
    } = {},
  ): DeliveryLoop {
    const endpoints = {
      findById: overrides.findById ?? (async (id: string) => (id === endpoint._id ? endpoint : null)),
    };
    return new DeliveryLoop(
      { outbox: outbox as any, leases: (overrides.leases ?? leases) as any, endpoints: endpoints as any },
      {
        pollMs: 10,
        scanMs: overrides.scanMs ?? 60000,
        leaseTtlMs: 60000,
        timeoutMs: 1000,
        maxAttempts: 3,
        backoff: overrides.backoff ?? { baseMs: 10, maxMs: 20 },
        concurrency: overrides.concurrency ?? 4,
        retentionMs: overrides.retentionMs ?? 0,
        policy: new AddressPolicy("127.0.0.1"),
      },
      { debug() {}, info() {}, warn: (m: string) => warnings.push(m), error() {} } as any,
    );
  }

  beforeEach(async () => {
    received = [];
    warnings = [];
    heldAnswer = null;
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        const id = JSON.parse(body).id;
        received.push(id);
        const h = heldAnswer;
        const held = h && h.id === id ? h.until : undefined;
        void Promise.resolve(held).then(() => res.end());
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const now = new Date();
    endpoint = {
      _id: "wh_1",
      workspaceId: "ws",
      url: `http://127.0.0.1:${(server.address() as { port: number }).port}/`,
      secret: "s",
      events: ["*"],
      enabled: true,
      createdAt: now,
      updatedAt: now,
    };
    outbox = new MemoryOutbox();
    loop = makeLoop();
  });
  afterEach(async () => {
    outbox.openGates();
    await loop.stop();
    server.close();
  });

  it("delivers a queue in seq order even when it hears of a later row first", async () => {
    outbox.put("wh_1", "acc", 1, "e1");
    loop.start();
    await waitFor(() => received.length === 1);
    // Another node put e2 at seq 2 (say account.created of another publisher); this node recorded e3 at
    // seq 3 and tells the loop of e3 only.
    outbox.put("wh_1", "acc", 2, "e2");
    loop.notify([outbox.put("wh_1", "acc", 3, "e3")]);
    await waitFor(() => received.length === 3);
    assert.deepEqual(received, ["e1", "e2", "e3"]);
  });

  it("a row made pending again (resent) is sent next in its queue, after the attempt under way there", async () => {
    outbox.put("wh_1", "acc", 1, "e1");
    outbox.put("wh_1", "acc", 2, "e2");
    loop.start();
    await waitFor(() => received.length === 2);
    const gate = outbox.gate();
    heldAnswer = { id: "e3", until: gate.shut };
    loop.notify([outbox.put("wh_1", "acc", 3, "e3")]);
    await waitFor(() => received.includes("e3"), { what: "e3's attempt under way" });
    // What webhooks.resend writes (the row was dead), then tells the loop.
    Object.assign(outbox.rows.get(slotId("wh_1", "acc", 1))!, { status: "pending", attempts: 0 });
    loop.resent([{ endpointId: "wh_1", accountId: "acc", seq: 1 }]);
    // A row of another queue, sent by the same tick that took the word of the resent row in.
    loop.notify([outbox.put("wh_1", "acc2", 1, "f1")]);
    await waitFor(() => received.includes("f1"), { what: "a tick after the word" });
    gate.open();
    await waitFor(() => received.length === 5, { what: "e1 sent again" });
    assert.deepEqual(received, ["e1", "e2", "e3", "f1", "e1"]);
    await waitFor(() => outbox.rows.get(slotId("wh_1", "acc", 1))!.status === "delivered");
  });

  it("a resent row far back is sent, then the queue goes on where it was without reading each row between", async () => {
    for (let seq = 1; seq <= 30; seq++) outbox.put("wh_1", "acc", seq, `e${seq}`);
    loop.start();
    const status = (seq: number) => outbox.rows.get(slotId("wh_1", "acc", seq))!.status;
    const resend = (seq: number) => {
      Object.assign(outbox.rows.get(slotId("wh_1", "acc", seq))!, { status: "pending", attempts: 0 });
      loop.resent([{ endpointId: "wh_1", accountId: "acc", seq }]);
    };
    await waitFor(() => received.length === 30 && status(30) === "delivered", { what: "e1…e30 delivered" });
    const readsBefore = outbox.reads.length;
    resend(5);
    loop.notify([outbox.put("wh_1", "acc", 31, "e31")]);
    await waitFor(() => received.length === 32, { what: "e5 and e31 sent" });
    assert.deepEqual(received.slice(30), ["e5", "e31"]);
    const read = outbox.reads.slice(readsBefore);
    assert.ok(read.length < 5, `read back ${read.length} positions: ${read.join(",")}`);

    // Two rows of the queue resent at once: both sent, in queue order.
    await waitFor(() => status(5) === "delivered" && status(31) === "delivered");
    resend(8);
    resend(12);
    loop.notify([outbox.put("wh_1", "acc", 32, "e32")]);
    await waitFor(() => received.length === 35, { what: "e8, e12 and e32 sent" });
    assert.deepEqual(received.slice(32), ["e8", "e12", "e32"]);
  });

  it("queues take turns for the attempt slots: a busy queue does not hold them from the others", async () => {
    await loop.stop();
    loop = makeLoop({ concurrency: 1 });
    for (let seq = 1; seq <= 10; seq++) outbox.put("wh_1", "busy-a", seq, `a${seq}`);
    for (let seq = 1; seq <= 10; seq++) outbox.put("wh_1", "busy-b", seq, `b${seq}`);
    outbox.put("wh_1", "quiet", 1, "c1");
    loop.start();
    await waitFor(() => received.length === 21);
    // One slot: the quiet account's event goes out in the first round, not after the busy ones'.
    assert.deepEqual(received.slice(0, 3).sort(), ["a1", "b1", "c1"]);
    for (const prefix of ["a", "b"])
      assert.deepEqual(
        received.filter((id) => id.startsWith(prefix)),
        Array.from({ length: 10 }, (_, i) => `${prefix}${i + 1}`),
        "each queue in order",
      );
  });

  it("a stopping loop lets an attempt in flight finish and marks it delivered, rather than cutting it", async () => {
    // The receiver takes its time to answer the one event.
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    server.removeAllListeners("request");
    server.on("request", (req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        received.push(JSON.parse(body).id);
        setTimeout(() => {
          res.end();
          answer();
        }, 200);
      });
    });
    outbox.put("wh_1", "acc", 1, "e1");
    loop.start();
    await waitFor(() => received.length === 1, { what: "the attempt under way" });
    await loop.stop();
    await answered;
    assert.equal(outbox.rows.get(slotId("wh_1", "acc", 1))!.status, "delivered");
    assert.deepEqual(received, ["e1"]);
  });

  it("a claim that fails (the database) is tried again at the next tick, not at the next scan", async () => {
    let claims = 0;
    const flaky = {
      ...leases,
      async claim(endpointId: string) {
        if (++claims === 1) throw new Error("database is locked");
        return leases.claim(endpointId);
      },
    };
    await loop.stop();
    loop = makeLoop({ leases: flaky });
    outbox.put("wh_1", "acc", 1, "e1");
    loop.start();
    // The scan (every 60 s here) found the queue once; only the retry can deliver it in time.
    await waitFor(() => received.length === 1, { timeoutMs: 5000 });
    assert.equal(claims, 2);
  });

  it("a queue it has no cursor for starts at its first pending row, not at the row it heard of", async () => {
    // The endpoint is held (and queue acc has a cursor) before any row of acc2 exists.
    outbox.put("wh_1", "acc", 1, "a1");
    loop.start();
    await waitFor(() => received.includes("a1"));
    outbox.put("wh_1", "acc2", 1, "b1");
    outbox.put("wh_1", "acc2", 2, "b2");
    loop.notify([outbox.put("wh_1", "acc2", 3, "b3")]);
    await waitFor(() => received.length === 4);
    assert.deepEqual(
      received.filter((id) => id.startsWith("b")),
      ["b1", "b2", "b3"],
    );
  });

  it("a failing head holds back the rest of its queue only", async () => {
    let failFirst = true;
    server.removeAllListeners("request");
    server.on("request", (req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        const id = JSON.parse(body).id;
        if (id === "x1" && failFirst) {
          failFirst = false;
          res.statusCode = 500;
          return res.end();
        }
        received.push(id);
        res.end();
      });
    });
    outbox.put("wh_1", "accX", 1, "x1");
    outbox.put("wh_1", "accX", 2, "x2");
    outbox.put("wh_1", "accY", 1, "y1");
    loop.start();
    await waitFor(() => received.length === 3);
    assert.ok(received.indexOf("x1") < received.indexOf("x2"));
    assert.equal(outbox.rows.get(slotId("wh_1", "accX", 1))!.attempts, 2);
  });

  it("sends a row it inserted while holding the endpoint without reading it back", async () => {
    outbox.put("wh_1", "acc", 1, "a1");
    loop.start();
    // Once a1 is sent the loop looks at position 2 (nothing there yet) and waits.
    await waitFor(() => received.length === 1 && outbox.reads.includes(2));
    const readsBefore = outbox.reads.length;
    loop.notify([outbox.insert("wh_1", "acc", 2, "a2")]);
    await waitFor(() => received.length === 2);
    assert.deepEqual(received, ["a1", "a2"]);
    const after = outbox.reads.slice(readsBefore);
    assert.ok(!after.includes(2), `positions read back after the insert: ${after.join(",")}`);
  });

  it("a row heard of while the read of its position was finding nothing is sent without waiting for a scan", async () => {
    const read = outbox.gate();
    outbox.slowRead = { seq: 2, gate: read.shut };
    outbox.put("wh_1", "acc", 1, "a1");
    loop.start();
    // Once a1 is sent the loop reads position 2 (empty), and the row is inserted and heard of before
    // that read answers.
    await waitFor(() => received.length === 1 && outbox.reads.includes(2), {
      what: "the read of position 2",
    });
    loop.notify([outbox.insert("wh_1", "acc", 2, "a2")]);
    outbox.slowRead = null;
    read.open();
    // Scans come every 60 s here: only the notification can get a2 sent.
    await waitFor(() => received.length === 2, { what: "a2 sent", timeoutMs: 3000 });
    assert.deepEqual(received, ["a1", "a2"]);
  });

  it("rows another node recorded wake the queues of endpoints it holds, and claim none it does not", async () => {
    let claims = 0;
    const counting = { ...leases, claim: (id: string) => (claims++, leases.claim(id)) };
    await loop.stop();
    loop = makeLoop({ leases: counting });
    loop.notify([outbox.insert("wh_1", "acc", 1, "a1")]);
    loop.start();
    await waitFor(() => received.length === 1);
    // Position 2 was read (empty): the queue idles until told; scans come every 60 s here.
    await waitFor(() => outbox.reads.includes(2));
    outbox.put("wh_1", "acc", 2, "a2");
    outbox.put("wh_2", "acc", 1, "other");
    loop.recordedElsewhere([
      { endpointId: "wh_1", accountId: "acc", seq: 2 },
      { endpointId: "wh_2", accountId: "acc", seq: 1 },
    ]);
    await waitFor(() => received.length === 2, { what: "a2 sent", timeoutMs: 3000 });
    assert.deepEqual(received, ["a1", "a2"]);
    assert.equal(claims, 1, "only wh_1 claimed");
    assert.deepEqual(loop.heldEndpoints(), ["wh_1"]);
  });

  it("a slow scan of the outbox does not hold back deliveries", async () => {
    await loop.stop();
    loop = makeLoop({ scanMs: 20 });
    outbox.scanGate = outbox.gate().shut;
    loop.start();
    await waitFor(() => outbox.scans >= 1, { what: "the first scan" });
    // The scan hangs; the rows are heard of from this node's recording meanwhile.
    loop.notify([outbox.insert("wh_1", "acc", 1, "a1")]);
    loop.notify([outbox.insert("wh_1", "acc", 2, "a2")]);
    await waitFor(() => received.length === 2, { what: "a1 and a2 sent during the scan", timeoutMs: 3000 });
    assert.deepEqual(received, ["a1", "a2"]);
  });

  it("a row it inserted before it took the endpoint is read back (the previous holder may have sent it)", async () => {
    outbox.put("wh_1", "acc", 1, "a1");
    loop.start();
    await waitFor(() => received.length === 1 && outbox.reads.includes(2));
    const readsBefore = outbox.reads.length;
    const early = outbox.insert("wh_1", "acc", 2, "a2");
    early.doc!.createdAt = new Date(0);
    // Sent meanwhile by the previous holder: the database says so, the insert's answer does not.
    outbox.rows.get(slotId("wh_1", "acc", 2))!.status = "delivered";
    loop.notify([early, outbox.insert("wh_1", "acc", 3, "a3")]);
    await waitFor(() => received.length === 2);
    assert.deepEqual(received, ["a1", "a3"]);
    assert.ok(outbox.reads.slice(readsBefore).includes(2), "position 2 read back");
  });

  it("a scan leaves a queue where it is when its pending head is a row whose delivered mark is on its way", async () => {
    await loop.stop();
    loop = makeLoop({ scanMs: 20 });
    const mark = outbox.gate();
    outbox.markGate = mark.shut;
    outbox.put("wh_1", "acc", 1, "a1");
    loop.start();
    await waitFor(() => received.length === 1);
    // The mark has not landed: every scan sees a1 pending, and leaves the cursor where it is (walking
    // back onto a1 would read every row since again).
    const scans = outbox.scans;
    const readsOf1 = outbox.reads.filter((seq) => seq === 1).length;
    await waitFor(() => outbox.scans >= scans + 3, { what: "three scans while the mark waits" });
    assert.equal(outbox.rows.get(slotId("wh_1", "acc", 1))!.status, "pending");
    assert.equal(outbox.reads.filter((seq) => seq === 1).length, readsOf1, "position 1 read again");
    mark.open();
    await waitFor(() => outbox.rows.get(slotId("wh_1", "acc", 1))!.status === "delivered");
    loop.notify([outbox.insert("wh_1", "acc", 2, "a2")]);
    await waitFor(() => received.length === 2);
    assert.deepEqual(received, ["a1", "a2"]);
  });

  it("a row heard of only after it was sent is not taken for pending", async () => {
    await loop.stop();
    loop = makeLoop({ scanMs: 20 });
    outbox.put("wh_1", "acc", 1, "a1");
    const late = { ...outbox.rows.get(slotId("wh_1", "acc", 1))! };
    loop.start();
    await waitFor(() => outbox.rows.get(slotId("wh_1", "acc", 1))!.status === "delivered");
    // Its recording answers now, and a scan that read before the mark rewinds the cursor onto it.
    loop.notify([{ endpointId: "wh_1", accountId: "acc", seq: 1, inserted: true, doc: late }]);
    outbox.staleHeads = [{ endpointId: "wh_1", accountId: "acc", seq: 1 }];
    const scans = outbox.scans;
    await waitFor(() => outbox.scans >= scans + 3, { what: "three stale scans" });
    outbox.staleHeads = null;
    loop.notify([outbox.insert("wh_1", "acc", 2, "a2")]);
    await waitFor(() => received.length === 2);
    assert.deepEqual(received, ["a1", "a2"]);
  });

  it("a row read back while its delivered mark lands, the read answering pending after it did, is not sent again", async () => {
    await loop.stop();
    loop = makeLoop({ scanMs: 20 });
    const status = (seq: number) => outbox.rows.get(slotId("wh_1", "acc", seq))!.status;
    outbox.put("wh_1", "acc", 1, "a1");
    outbox.put("wh_1", "acc", 2, "a2");
    loop.start();
    await waitFor(() => status(1) === "delivered" && status(2) === "delivered", { what: "a1, a2 marked" });
    const mark = outbox.gate();
    outbox.markGate = mark.shut;
    loop.notify([outbox.put("wh_1", "acc", 3, "a3")]);
    await waitFor(() => received.length === 3, { what: "a3 sent" });
    // A scan that read before a1's mark landed wakes the queue back at a1: the walk reads a3 while its
    // mark is on its way, and that read answers only after the mark landed, with what it read before.
    const read = outbox.gate();
    outbox.slowRead = { seq: 3, gate: read.shut };
    const readsBefore = outbox.reads.length;
    outbox.staleHeads = [{ endpointId: "wh_1", accountId: "acc", seq: 1 }];
    await waitFor(() => outbox.reads.slice(readsBefore).includes(3), { what: "a3 read back" });
    outbox.staleHeads = null;
    mark.open();
    await waitFor(() => status(3) === "delivered", { what: "a3 marked" });
    await new Promise<void>((resolve) => setImmediate(resolve)); // the mark settled on this node too
    read.open();
    loop.notify([outbox.put("wh_1", "acc", 4, "a4")]);
    await waitFor(() => received.length >= 4, { what: "a4 sent" });
    const scans = outbox.scans;
    await waitFor(() => outbox.scans >= scans + 3, { what: "three scans after a4" });
    assert.deepEqual(received, ["a1", "a2", "a3", "a4"]);
  });

  it("a delivered mark whose write failed is written again, and its row is not sent again after the next", async () => {
    await loop.stop();
    loop = makeLoop({ scanMs: 20 });
    outbox.failMarks = 1;
    outbox.put("wh_1", "acc", 1, "a1");
    loop.start();
    await waitFor(() => received.length === 1, { what: "a1 sent" });
    loop.notify([outbox.insert("wh_1", "acc", 2, "a2")]);
    const status = (seq: number) => outbox.rows.get(slotId("wh_1", "acc", seq))!.status;
    await waitFor(() => status(1) === "delivered" && status(2) === "delivered", {
      what: "both marks written",
    });
    assert.equal(outbox.failMarks, 0, "the first write failed");
    // Scans meanwhile read a1 pending: none may take it for a row to send.
    const scans = outbox.scans;
    await waitFor(() => outbox.scans >= scans + 3, { what: "three scans after the marks" });
    assert.deepEqual(received, ["a1", "a2"]);
  });

  it("a lease lost while a delivered mark is being written: the node that takes the endpoint back does not send the row again", async () => {
    await loop.stop();
    let lose = false;
    let lost = 0;
    const flaky = {
      ...leases,
      // Due for renewal at every tick (two thirds of a minute left), and covering an attempt.
      async claim(endpointId: string) {
        return { endpointId, term: 1, validUntil: Date.now() + 30000 };
      },
      async renew() {
        if (!lose) return true;
        lose = false;
        lost++;
        return false;
      },
    };
    loop = makeLoop({ scanMs: 20, leases: flaky });
    const marking = outbox.gate();
    outbox.markGate = marking.shut;
    outbox.put("wh_1", "acc", 1, "a1");
    loop.start();
    await waitFor(() => received.length === 1, { what: "a1 sent" });
    lose = true;
    await waitFor(() => lost === 1 && loop.holds("wh_1"), { what: "the lease lost, then taken back" });
    // Scans meanwhile read a1 pending (its mark is still on its way): none may send it again.
    const scans = outbox.scans;
    await waitFor(() => outbox.scans >= scans + 3, { what: "three scans after the retake" });
    marking.open();
    await waitFor(() => outbox.rows.get(slotId("wh_1", "acc", 1))!.status === "delivered", {
      what: "a1's mark written",
    });
    assert.deepEqual(received, ["a1"]);
  });

  it("an endpoint whose settings cannot be read holds back its own queues only, and is logged once", async () => {
    await loop.stop();
    let badReads = 0;
    loop = makeLoop({
      scanMs: 20,
      findById: async (id) => {
        if (id !== "wh_bad") return id === endpoint._id ? endpoint : null;
        badReads++;
        throw new Error("a stored secret was sealed under key ab12, which this node does not have");
      },
    });
    // wh_bad comes first in every order the loop keeps its queues in.
    outbox.put("wh_bad", "acc", 1, "bad1");
    outbox.put("wh_1", "acc", 1, "a1");
    loop.start();
    await waitFor(() => received.length === 1, { what: "a1 sent", timeoutMs: 3000 });
    loop.notify([outbox.insert("wh_1", "acc", 2, "a2")]);
    await waitFor(() => received.length === 2, { what: "a2 sent", timeoutMs: 3000 });
    await waitFor(() => badReads >= 3, { what: "wh_bad's settings read again" });
    assert.deepEqual(received, ["a1", "a2"]);
    assert.equal(outbox.rows.get(slotId("wh_bad", "acc", 1))!.status, "pending");
    const aboutBad = warnings.filter((w) => w.includes("wh_bad"));
    assert.equal(aboutBad.length, 1, aboutBad.join("\n"));
    assert.match(aboutBad[0], /sealed under key ab12/);
  });

  /** Answers every request 500, noting when each came and its attempt number. */
  function refuseAll(): { at: number; attempt: string }[] {
    const refused: { at: number; attempt: string }[] = [];
    server.removeAllListeners("request");
    server.on("request", (req, res) => {
      req.resume();
      refused.push({ at: Date.now(), attempt: String(req.headers["x-switchboard-delivery-attempt"]) });
      res.statusCode = 500;
      res.end();
    });
    return refused;
  }

  it("a refused attempt whose write fails still counts: the next waits for the back-off, with the next number", async () => {
    await loop.stop();
    loop = makeLoop({ backoff: { baseMs: 400, maxMs: 400 } });
    const refused = refuseAll();
    outbox.failFailureWrite = () => true;
    outbox.put("wh_1", "acc", 1, "a1");
    loop.start();
    await waitFor(() => refused.length >= 2, { what: "a second attempt" });
    assert.deepEqual(
      refused.map((r) => r.attempt),
      ["1", "2"],
    );
    const gap = refused[1].at - refused[0].at;
    assert.ok(gap >= 190, `second attempt ${gap} ms after the first (back-off 200-400 ms)`);
  });

  it("a last attempt whose dead write fails is not sent again: the write is tried again alone", async () => {
    const refused = refuseAll();
    let deadWritesToFail = 1;
    outbox.failFailureWrite = (f) => f.nextAttemptAt === null && deadWritesToFail-- > 0;
    outbox.put("wh_1", "acc", 1, "a1");
    loop.start();
    const row = () => outbox.rows.get(slotId("wh_1", "acc", 1))!;
    await waitFor(() => row().status === "dead", { what: "a1 dead" });
    assert.deepEqual(
      refused.map((r) => r.attempt),
      ["1", "2", "3"],
    );
    assert.equal(row().attempts, 3);
    assert.equal(row().lastError, "HTTP 500");
    assert.equal(outbox.failureWrites.filter((f) => f.nextAttemptAt === null).length, 2);
  });

  it("a resend after a last attempt whose dead write landed with its answer lost is sent, not written dead again", async () => {
    await loop.stop();
    // The remembered retry time of the last attempt is far off (as the default back-off's 150-300 s).
    loop = makeLoop({ backoff: { baseMs: 60000, maxMs: 60000 } });
    let refuse = true;
    server.removeAllListeners("request");
    server.on("request", (req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        received.push(JSON.parse(body).id);
        res.statusCode = refuse ? 500 : 200;
        res.end();
      });
    });
    outbox.put("wh_1", "acc", 1, "a1");
    const row = () => outbox.rows.get(slotId("wh_1", "acc", 1))!;
    row().attempts = 2; // the next attempt is the last (maxAttempts 3)
    // The dead write lands, and every try of it loses its answer (the database away for a moment).
    const markFailed = outbox.markFailed.bind(outbox);
    outbox.markFailed = async (id: string, f: FailureUpdate) => {
      const written = await markFailed(id, f);
      if (f.nextAttemptAt === null) throw new Error("database is locked");
      return written;
    };
    loop.start();
    await waitFor(() => warnings.some((w) => w.includes("writing failed attempt 3")), {
      what: "the dead write's answer lost",
    });
    assert.equal(row().status, "dead");
    outbox.markFailed = markFailed;
    refuse = false;
    // What webhooks.resend writes, then tells the loop.
    Object.assign(row(), { status: "pending", attempts: 0, nextAttemptAt: new Date() });
    loop.resent([{ endpointId: "wh_1", accountId: "acc", seq: 1 }]);
    await waitFor(() => row().status === "delivered", { what: "a1 sent again", timeoutMs: 3000 });
    assert.deepEqual(received, ["a1", "a1"]);
    assert.equal(row().attempts, 1);
  });

  it("a prune that takes long does not hold back deliveries", async () => {
    await loop.stop();
    // A node prunes at a random phase of its period: this one is due at once.
    const random = Math.random;
    Math.random = () => 0.9999999;
    try {
      loop = makeLoop({ retentionMs: 1000 });
    } finally {
      Math.random = random;
    }
    const prune = outbox.gate();
    outbox.pruneGate = prune.shut;
    outbox.put("wh_1", "acc", 1, "a1");
    loop.start();
    await waitFor(() => outbox.prunes === 1, { what: "the prune" });
    loop.notify([outbox.insert("wh_1", "acc", 2, "a2")]);
    await waitFor(() => received.length === 2, { what: "a1 and a2 sent during the prune", timeoutMs: 3000 });
    assert.deepEqual(received, ["a1", "a2"]);
    // Stopping waits for the prune.
    let stopped = false;
    const stopping = loop.stop().then(() => (stopped = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(stopped, false, "stopped before the prune ended");
    prune.open();
    await stopping;
    assert.equal(outbox.prunes, 1);
  });
});
