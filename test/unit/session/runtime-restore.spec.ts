// A restore (startMany after a failover: accounts connected on a lost node) opens the accounts it
// claimed a few at a time: one logged out or stopped while it waits its turn, or while its claim is
// written, is not opened after all, and nor is one whose workspace the node lost meanwhile.
import { strict as assert } from "node:assert";
import type { Fence, Ownership } from "../../../src/placement/fence.ts";
import type { Publisher } from "../../../src/session/event-publisher.ts";
import { heldStep, simulatedRuntime } from "./simulated-runtime.ts";
import { waitFor } from "../../support/wait.ts";
import type { AccountDoc } from "../../../src/accounts/types.ts";

/** A publisher whose announcements wait until `release()`: a restore stops at its first two opens. */
function heldAnnouncements() {
  const step = heldStep();
  const state = { holding: 0 };
  const publisher: Publisher = {
    record: async (_e, p) => {
      state.holding++;
      await step.held;
      return p;
    },
    send: () => undefined,
  };
  return { publisher, release: step.release, holding: () => state.holding };
}

/** The account as a lost node left it: connected there, under an older epoch. */
const lostConnected = (docOf: (id: string) => AccountDoc) => (id: string) => ({
  ...docOf(id),
  status: "connected" as const,
  node: "n0",
  epoch: 0,
});

describe("session runtime: a restore's queue", () => {
  it("an account stopped or logged out while it waits its turn is not opened; the others are", async () => {
    const held = heldAnnouncements();
    const { runtime, docOf } = simulatedRuntime({ publisher: held.publisher });
    const lost = lostConnected(docOf);
    try {
      const ids = ["r1", "r2", "r3", "r4", "r5"];
      const restoring = runtime.startMany(ids.map(lost));
      await waitFor(() => held.holding() === 2, { what: "the restore to be under way" });
      assert.equal(await runtime.logout("r4"), null, "nothing runs yet");
      assert.equal(await runtime.stop("r5"), null);
      held.release();
      await restoring;
      assert.deepEqual(
        ids.filter((id) => runtime.has(id)),
        ["r1", "r2", "r3"],
      );
    } finally {
      held.release();
      await runtime.stopAll();
    }
  });

  it("an account whose workspace the node lost while it waited is not opened", async () => {
    const fence: Fence = { node: "n1", epoch: 1 };
    let owned = true;
    const ownership: Ownership = {
      current: () => (owned ? fence : null),
      acquire: async () => fence,
    };
    const held = heldAnnouncements();
    const { runtime, docOf } = simulatedRuntime({ publisher: held.publisher, ownership });
    const lost = lostConnected(docOf);
    try {
      const restoring = runtime.startMany(["l1", "l2", "l3"].map(lost));
      await waitFor(() => held.holding() === 2, { what: "the restore to be under way" });
      owned = false;
      const stopping = runtime.stopWorkspace("ws");
      held.release();
      await stopping;
      await restoring;
      assert.deepEqual(
        ["l1", "l2", "l3"].filter((id) => runtime.has(id)),
        [],
      );
    } finally {
      held.release();
      await runtime.stopAll();
    }
  });

  it("an account stopped while the restore's claim is still being written is not opened", async () => {
    const claim = heldStep();
    let claiming = false;
    const { runtime, docOf } = simulatedRuntime({
      beforeClaim: async () => {
        claiming = true;
        await claim.held;
      },
    });
    const lost = lostConnected(docOf);
    try {
      const restoring = runtime.startMany(["c1", "c2"].map(lost));
      await waitFor(() => claiming, { what: "the claim to be under way" });
      assert.equal(await runtime.stop("c2"), null);
      claim.release();
      await restoring;
      assert.deepEqual(
        ["c1", "c2"].filter((id) => runtime.has(id)),
        ["c1"],
      );
    } finally {
      claim.release();
      await runtime.stopAll();
    }
  });
});
