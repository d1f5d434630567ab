// Messages received before a stop are published even when they still wait behind a slow publish as
// the session closes: WhatsApp does not deliver them again (the saved profile already holds them).
// Only status changes of a closed session are dropped (its `stopped` wins).
import { strict as assert } from "node:assert";
import { DatabaseUnavailableError } from "../../../src/errors.ts";
import type { Publisher } from "../../../src/session/event-publisher.ts";
import { waitFor } from "../../support/wait.ts";
import { heldStep, simulatedRuntime } from "./simulated-runtime.ts";

/** A publisher whose received messages wait for `publish`, then are noted (their text) in order. */
function slowMessages(publish: { held: Promise<void> }, published: string[]): Publisher {
  return {
    record: async (event, payload) => {
      if (event === "account.message") {
        await publish.held;
        published.push((payload as { text: string }).text);
      }
      return payload;
    },
    send: () => undefined,
  };
}

describe("session/runtime: a stop while received messages wait to be published", () => {
  it("publishes every message received before the stop", async () => {
    const publish = heldStep();
    const published: string[] = [];
    const { runtime, connected } = simulatedRuntime({
      publisher: slowMessages(publish, published),
    });
    const simulate = await connected("acc4");
    await simulate.message("4915100000001", "first"); // its publish waits
    await simulate.message("4915100000001", "second"); // queued behind it
    const stopping = runtime.stop("acc4");
    publish.release();
    await stopping;
    await waitFor(() => published.length === 2, { what: "both messages published", timeoutMs: 2000 });
    assert.deepEqual(published, ["first", "second"], "in the order received");
  });

  it("publishes them when the stop is a hand-off (drain, rebalance): the record is still this node's", async () => {
    const publish = heldStep();
    const published: string[] = [];
    const fence = { node: "n1", epoch: 1 };
    let handingOff = false;
    const { runtime, connected } = simulatedRuntime({
      // A hand-off: nothing new may start (`current` is null), the fence still stands.
      ownership: {
        current: () => (handingOff ? null : fence),
        acquire: async () => fence,
        handingOff: () => (handingOff ? fence : null),
      },
      publisher: slowMessages(publish, published),
    });
    const simulate = await connected("acc5");
    await simulate.message("4915100000001", "first");
    await simulate.message("4915100000001", "second");
    handingOff = true;
    const stopping = runtime.stopWorkspace("ws");
    publish.release();
    await stopping;
    await waitFor(() => published.length === 2, { what: "both messages published", timeoutMs: 2000 });
    assert.deepEqual(published, ["first", "second"]);
  });

  it("a message received during a hand-off while the database is away is published once it is back", async () => {
    const fence = { node: "n1", epoch: 1 };
    let handingOff = false;
    const down = { now: false, refused: 0 };
    const published: string[] = [];
    const { runtime, connected } = simulatedRuntime({
      ownership: {
        current: () => (handingOff ? null : fence),
        acquire: async () => fence,
        handingOff: () => (handingOff ? fence : null),
      },
      publisher: {
        record: async (event, payload) => {
          if (event === "account.message") {
            if (down.now) {
              down.refused++;
              throw new DatabaseUnavailableError("connect ECONNREFUSED");
            }
            published.push((payload as { text: string }).text);
          }
          return payload;
        },
        send: () => undefined,
      },
    });
    const simulate = await connected("acc8");
    // The hand-off has begun (the sessions still run while their changes are flushed).
    handingOff = true;
    down.now = true;
    await simulate.message("4915100000001", "during the hand-off");
    await waitFor(() => down.refused >= 2, { what: "the message refused, then tried again" });
    down.now = false;
    await waitFor(() => published.length === 1, { what: "the message published", timeoutMs: 5000 });
    assert.deepEqual(published, ["during the hand-off"]);
    handingOff = false;
    await runtime.stop("acc8");
  });

  it("a logout during a stop answers once the stop has ended (its engine's last save would come after)", async () => {
    let hold: ReturnType<typeof heldStep> | null = null;
    const { runtime, connected } = simulatedRuntime({ beforeWrite: () => hold?.held ?? Promise.resolve() });
    await connected("acc9");
    hold = heldStep();
    const stopping = runtime.stop("acc9"); // its `stopped` write is held open
    await waitFor(() => !runtime.has("acc9"), { what: "the session closed" });
    let answered = false;
    const logout = runtime.logout("acc9").then((status) => {
      answered = true;
      return status;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(answered, false, "not before the stop has ended");
    hold.release();
    assert.equal(await logout, null, "not running here: the caller deletes the saved state");
    assert.equal(await stopping, "stopped");
  });

  it("a QR whose announcement was still being logged when the session stopped is never shown", async () => {
    const logged = heldStep();
    const sent: string[] = [];
    let holding = false;
    const publisher: Publisher = {
      record: async (event, payload) => {
        if (event === "account.status" && (payload as { status: string }).status === "qr_scanning") {
          holding = true;
          await logged.held;
        }
        return payload;
      },
      send: (event) => void sent.push(event),
    };
    const { runtime, docOf } = simulatedRuntime({ publisher });
    try {
      await runtime.start(docOf("acc_qr"));
      await waitFor(() => holding, { what: "the QR screen's announcement being logged" });
      const stopping = runtime.stop("acc_qr");
      await waitFor(() => !runtime.has("acc_qr"), { what: "the session closed" });
      logged.release();
      await stopping;
      assert.equal(sent.includes("account.qr"), false, "no QR of a stopped session");
    } finally {
      logged.release();
      await runtime.stopAll();
    }
  });
});
