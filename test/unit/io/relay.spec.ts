import { strict as assert } from "node:assert";
import {
  RecentReplays,
  RelayedUpTo,
  SnapshotHold,
  roomOf,
  seqOfEvent,
  withoutQrsInSnapshot,
  withoutReplayed,
  workspaceOfEvent,
} from "../../../src/io/relay.ts";

describe("io relay", () => {
  it("names one room per workspace", () => {
    assert.equal(roomOf("42"), "ws:42");
  });

  it("finds the workspace of every relayed event shape", () => {
    assert.equal(workspaceOfEvent({ accountId: "a", workspaceId: "w1" }), "w1");
    assert.equal(workspaceOfEvent({ account: { id: "a", workspaceId: "w2" } }), "w2");
    assert.equal(workspaceOfEvent({ accountId: "a" }), null);
    assert.equal(workspaceOfEvent(null), null);
  });

  it("holds events of a waiting socket's workspace only, in order, until released", () => {
    const hold = new SnapshotHold();
    hold.hold("w1", "s1");
    hold.offer("w1", "account.status", { n: 1 });
    hold.offer("w2", "account.status", { n: 99 });
    hold.offer("w1", "account.qr", { n: 2 });
    assert.equal(hold.size, 1);
    assert.deepEqual(
      hold.release("w1", "s1").events.map((h) => (h.payload as { n: number }).n),
      [1, 2],
    );
    assert.equal(hold.size, 0);
    hold.offer("w1", "account.status", { n: 3 });
    assert.deepEqual(hold.release("w1", "s1"), { events: [], dropped: false });
  });

  it("bounds what it holds per socket, and says when it dropped some", () => {
    const hold = new SnapshotHold(2);
    hold.hold("w", "s");
    hold.hold("w", "t");
    for (let n = 1; n <= 2; n++) hold.offer("w", "account.message", { n });
    assert.equal(hold.release("w", "t").dropped, false, "full, nothing dropped");
    for (let n = 3; n <= 5; n++) hold.offer("w", "account.message", { n });
    const held = hold.release("w", "s");
    assert.deepEqual(
      held.events.map((h) => (h.payload as { n: number }).n),
      [4, 5],
    );
    assert.equal(held.dropped, true);
  });

  it("drops held QRs the snapshot already shows", () => {
    const held = [
      { event: "account.qr" as const, payload: { accountId: "a", qr: "q1" } },
      { event: "account.qr" as const, payload: { accountId: "a", qr: "q2" } },
      { event: "account.status" as const, payload: { accountId: "a" } },
    ];
    const items = [{ id: "a", qr: { qr: "q1", dataUrl: "", seq: 1, expiresAt: 0 } }];
    assert.deepEqual(
      withoutQrsInSnapshot(held, items).map((h) => (h.payload as { qr?: string }).qr ?? h.event),
      ["q2", "account.status"],
    );
  });
});

describe("io/relay: resume switch-over", () => {
  const held = [
    { event: "account.message" as const, payload: { cursor: "4" } },
    { event: "account.qr" as const, payload: { qr: "x" } },
    { event: "account.message" as const, payload: { cursor: "5" } },
    { event: "account.status" as const, payload: { cursor: "6" } },
  ];

  it("drops held events the replay already sent, keeps newer ones and those without a cursor, in order", () => {
    assert.deepEqual(withoutReplayed(held, { after: 3, seqs: new Set([4, 5]) }), [held[1], held[3]]);
    assert.deepEqual(withoutReplayed(held, { after: 0, seqs: new Set() }), held);
    assert.deepEqual(withoutReplayed(held, null), held);
  });

  it("drops what the client had before it resumed, and keeps one the replay stepped over (a late commit)", () => {
    // Resumed from 3; the replay sent 5 and 6, stepping over 4 (its insert still in flight past the
    // gap's wait), whose broadcast came while the socket was held.
    assert.deepEqual(withoutReplayed(held, { after: 3, seqs: new Set([5, 6]) }), [held[0], held[1]]);
    assert.deepEqual(withoutReplayed(held, { after: 5, seqs: new Set() }), [held[1], held[3]]);
  });

  it("reads a payload's cursor as its seq", () => {
    assert.equal(seqOfEvent({ cursor: "12" }), 12);
    assert.equal(seqOfEvent({ cursor: 12 }), null);
    assert.equal(seqOfEvent({}), null);
    assert.equal(seqOfEvent(null), null);
  });
});

describe("io/relay: where a snapshot stands in the log", () => {
  it("keeps each workspace's highest relayed cursor, ignoring events without one and older ones", () => {
    const upTo = new RelayedUpTo();
    assert.equal(upTo.of("ws1"), null);
    upTo.note("ws1", { cursor: "7" });
    upTo.note("ws1", { qr: "x" });
    upTo.note("ws1", { cursor: "5" });
    upTo.note("ws2", { cursor: "0" });
    assert.deepEqual([upTo.of("ws1"), upTo.of("ws2"), upTo.of("ws3")], ["7", "0", null]);
  });

  it("forgets the workspace noted longest ago rather than grow past its bound", () => {
    const upTo = new RelayedUpTo(2);
    upTo.note("a", { cursor: "1" });
    upTo.note("b", { cursor: "2" });
    upTo.note("b", { cursor: "3" });
    assert.equal(upTo.of("a"), "1");
    upTo.note("c", { cursor: "4" });
    assert.deepEqual([upTo.of("a"), upTo.of("b"), upTo.of("c")], [null, "3", "4"]);
  });

  it("RecentReplays: a live event a socket's replay sent, or at or below where it resumed, skips that socket, for the window only", () => {
    let now = 1000;
    const r = new RecentReplays(60_000, () => now);
    // s1 resumed from 2 and was sent 3, 4, 7 and 10 (the replay stepped over 8: its insert was late).
    r.note("w1", "s1", { after: 2, seqs: new Set([3, 4, 7, 10]) });
    r.note("w1", "s2", { after: 4, seqs: new Set() });
    assert.deepEqual(r.sent("w1", { cursor: "4" }), ["s1", "s2"]);
    assert.deepEqual(r.sent("w1", { cursor: "7" }), ["s1"]);
    assert.deepEqual(r.sent("w1", { cursor: "8" }), [], "stepped over: it goes out live");
    assert.deepEqual(r.sent("w1", { cursor: "11" }), []);
    assert.deepEqual(r.sent("w1", { accountId: "a" }), [], "a QR (no cursor) was never replayed");
    assert.deepEqual(r.sent("w2", { cursor: "1" }), []);
    r.forget("w1", "s2");
    assert.deepEqual(r.sent("w1", { cursor: "1" }), ["s1"]);
    now += 60_001;
    assert.deepEqual(r.sent("w1", { cursor: "1" }), [], "past the window");
  });
});
