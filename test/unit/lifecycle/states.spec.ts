// The transition table of DESIGN.md ("Account lifecycle"), checked pair by pair: every legal edge
// passes, every other (from, to) pair throws IllegalTransitionError — including self-transitions.
import { strict as assert } from "node:assert";
import { ERR_ILLEGAL_TRANSITION, IllegalTransitionError } from "../../../src/errors.ts";
import {
  allowedFrom,
  assertTransition,
  canTransition,
  isFailureReason,
  isStatus,
  LIVE_STATUSES,
  TERMINAL,
  STATUSES,
  type AccountStatus,
} from "../../../src/lifecycle/states.ts";

/** The table as DESIGN.md states it, written out independently of the module under test. */
const LEGAL: Record<AccountStatus, AccountStatus[]> = {
  initializing: [
    "qr_scanning",
    "authenticated",
    "connected",
    "disconnected",
    "failed",
    "logged_out",
    "stopped",
  ],
  qr_scanning: [
    "initializing",
    "authenticated",
    "connected",
    "disconnected",
    "failed",
    "logged_out",
    "stopped",
  ],
  authenticated: ["initializing", "connected", "disconnected", "failed", "logged_out", "stopped"],
  connected: ["initializing", "disconnected", "failed", "logged_out", "stopped"],
  disconnected: [
    "initializing",
    "qr_scanning",
    "authenticated",
    "connected",
    "failed",
    "logged_out",
    "stopped",
  ],
  failed: ["initializing", "logged_out", "stopped"],
  logged_out: ["initializing", "stopped"],
  stopped: ["initializing", "logged_out"],
};

describe("lifecycle/states: the transition table", () => {
  it("knows the eight statuses of DESIGN.md", () => {
    assert.deepEqual([...STATUSES].sort(), [
      "authenticated",
      "connected",
      "disconnected",
      "failed",
      "initializing",
      "logged_out",
      "qr_scanning",
      "stopped",
    ]);
    for (const s of STATUSES) assert.ok(isStatus(s));
    assert.ok(!isStatus("online"));
    assert.ok(!isStatus(undefined));
  });

  for (const from of STATUSES) {
    describe(`from ${from}`, () => {
      for (const to of STATUSES) {
        const legal = LEGAL[from].includes(to);
        it(`${legal ? "allows" : "rejects"} ${from} → ${to}`, () => {
          assert.equal(canTransition(from, to), legal);
          if (legal) assert.doesNotThrow(() => assertTransition(from, to));
          else {
            assert.throws(
              () => assertTransition(from, to),
              (err: unknown) =>
                err instanceof IllegalTransitionError &&
                err.type === ERR_ILLEGAL_TRANSITION &&
                err.code === 500 &&
                (err.data as { from: string; to: string }).from === from &&
                (err.data as { from: string; to: string }).to === to,
            );
          }
        });
      }
      it("lists exactly its legal targets", () => {
        assert.deepEqual([...allowedFrom(from)].sort(), [...LEGAL[from]].sort());
      });
    });
  }

  it("never allows a self-transition", () => {
    for (const s of STATUSES) assert.equal(canTransition(s, s), false, s);
  });

  it("lets every state restart (→ initializing) and every live state reach failed/stopped", () => {
    for (const s of STATUSES) if (s !== "initializing") assert.ok(canTransition(s, "initializing"), s);
    for (const s of LIVE_STATUSES) {
      assert.ok(canTransition(s, "failed"), s);
      assert.ok(canTransition(s, "stopped"), s);
    }
  });

  it("ends the engine exactly in the states that are not live", () => {
    const ended = STATUSES.filter((s) => !LIVE_STATUSES.includes(s));
    assert.deepEqual([...TERMINAL].sort(), ended.sort());
  });

  it("recognises failure reasons", () => {
    assert.ok(isFailureReason("qr_timeout"));
    assert.ok(!isFailureReason("failed"));
    assert.ok(!isFailureReason(undefined));
  });
});
