// Folding queued status changes into one write: which changes join a run, what the one write sets,
// and that every change is still there, in order, to be broadcast.
import { strict as assert } from "node:assert";
import type { SessionChange } from "../../../src/session/engine-events.ts";
import { foldStatusRun, initializingPatch, type QueuedChange } from "../../../src/session/status-run.ts";
import { IllegalTransitionError } from "../../../src/errors.ts";

let clock = 0;
function q(change: SessionChange, extra: Partial<QueuedChange> = {}): QueuedChange {
  clock += 1000;
  return { change, force: false, written: false, at: new Date(clock), ...extra };
}
const qrEvent = (seq: number) => ({ qr: `2@payload-${seq}`, seq, expiresAt: 1_000_000 + seq });

describe("session/status-run", () => {
  it("a restore's authenticated and connected are one write with the last values, two steps in order", () => {
    const queued = [
      q({ kind: "status", status: "authenticated" }),
      q({ kind: "status", status: "connected", phoneNumber: "+15550001", pushName: "Ana" }),
    ];
    const run = foldStatusRun("initializing", queued);
    assert.equal(run.consumed, 2);
    assert.deepEqual(
      run.steps.map((s) => [s.previous, s.change.status]),
      [
        ["initializing", "authenticated"],
        ["authenticated", "connected"],
      ],
    );
    assert.equal(run.needsWrite, true);
    assert.equal(run.terminal, false);
    assert.deepEqual(run.patch, {
      updatedAt: queued[1]!.at,
      status: "connected",
      reason: null,
      message: null,
      phoneNumber: "+15550001",
      pushName: "Ana",
    });
    assert.deepEqual(
      run.steps.map((s) => s.at),
      queued.map((x) => x.at),
    );
  });

  it("a run ends at a change that is not a status, and after a terminal status", () => {
    const relayed = foldStatusRun("connected", [
      q({ kind: "status", status: "disconnected", message: "gone" }),
      q({ kind: "message", message: { id: "m1", from: "+1", text: "hi", timestamp: 1 } }),
      q({ kind: "status", status: "connected", phoneNumber: "+1" }),
    ]);
    assert.equal(relayed.consumed, 1);
    assert.equal(relayed.patch.status, "disconnected");

    const ended = foldStatusRun("qr_scanning", [
      q({ kind: "status", status: "failed", reason: "qr_timeout", message: "not scanned" }),
      q({ kind: "status", status: "initializing" }),
    ]);
    assert.equal(ended.consumed, 1);
    assert.equal(ended.terminal, true);
    // A person must rescan: the account stops wanting to run.
    assert.equal(ended.patch.desiredState, "stopped");
    assert.equal(ended.patch.reason, "qr_timeout");
  });

  it("an illegal first change throws; an illegal later one ends the run before it", () => {
    assert.throws(
      () => foldStatusRun("stopped", [q({ kind: "status", status: "connected" })]),
      IllegalTransitionError,
    );
    const run = foldStatusRun("initializing", [
      q({ kind: "status", status: "stopped" }),
      q({ kind: "status", status: "connected" }),
    ]);
    // `stopped` is terminal anyway; from a live state the illegal edge is what stops the run.
    assert.equal(run.consumed, 1);
    const live = foldStatusRun("qr_scanning", [
      q({ kind: "status", status: "connected", phoneNumber: "+2" }),
      q({ kind: "status", status: "qr_scanning", qr: qrEvent(1) }),
    ]);
    assert.equal(live.consumed, 1);
    assert.equal(live.patch.status, "connected");
  });

  it("a repeated status is consumed without a step; a refreshed QR is a step with nothing to write", () => {
    const run = foldStatusRun("qr_scanning", [
      q({ kind: "status", status: "qr_scanning" }),
      q({ kind: "status", status: "qr_scanning", qr: qrEvent(2) }),
      q({ kind: "status", status: "qr_scanning", qr: qrEvent(3) }),
    ]);
    assert.equal(run.consumed, 3);
    assert.deepEqual(
      run.steps.map((s) => [s.refresh, s.change.qr?.seq]),
      [
        [true, 2],
        [true, 3],
      ],
    );
    assert.deepEqual(run.patch, {}, "QRs are never written");
    assert.equal(run.needsWrite, false);
    // The first QR comes with the status change, which is written (without the QR).
    const first = foldStatusRun("initializing", [
      q({ kind: "status", status: "qr_scanning", qr: qrEvent(1) }),
      q({ kind: "status", status: "qr_scanning", qr: qrEvent(2) }),
    ]);
    assert.equal(first.needsWrite, true);
    assert.equal(first.patch.status, "qr_scanning");
    assert.equal("qr" in first.patch, false);
    assert.deepEqual(
      first.steps.map((s) => s.change.qr?.seq),
      [1, 2],
    );
    const nothing = foldStatusRun("disconnected", [q({ kind: "status", status: "disconnected" })]);
    assert.deepEqual([nothing.consumed, nothing.steps.length, nothing.needsWrite], [1, 0, false]);
  });

  it("logged_out clears the phone number that an earlier step of the same run set", () => {
    const run = foldStatusRun("authenticated", [
      q({ kind: "status", status: "connected", phoneNumber: "+3", pushName: "Bo" }),
      q({ kind: "status", status: "logged_out" }),
    ]);
    assert.equal(run.consumed, 2);
    assert.equal(run.patch.phoneNumber, null);
    assert.equal(run.patch.pushName, null);
    assert.equal(run.patch.desiredState, "stopped");
    assert.equal(run.steps[0]!.patch.phoneNumber, "+3", "the connected event still carries its number");
  });

  it("changes the claim already wrote need no write, unless the run holds others", () => {
    const claimed = foldStatusRun("connected", [
      q({ kind: "status", status: "initializing" }, { written: true }),
    ]);
    assert.equal(claimed.needsWrite, false);
    assert.equal(claimed.steps.length, 1, "the initializing event is still broadcast");
    const more = foldStatusRun("connected", [
      q({ kind: "status", status: "initializing" }, { written: true }),
      q({ kind: "status", status: "authenticated" }),
    ]);
    assert.equal(more.needsWrite, true);
    assert.equal(more.patch.status, "authenticated");
  });

  it("the claim's patch is exactly what an initializing step writes", () => {
    const at = new Date(42);
    const run = foldStatusRun("stopped", [
      { change: { kind: "status", status: "initializing" }, at, force: false, written: false },
    ]);
    assert.deepEqual(initializingPatch(at), run.patch);
    assert.deepEqual(initializingPatch(at), {
      updatedAt: at,
      status: "initializing",
      reason: null,
      message: null,
    });
  });
});
