// A send's answer must not wait for the session's other changes: a busy chat's incoming messages (each
// published, its media kept) queue in the session's pipeline, and a send that waited for that queue
// to empty answered late (and sat in `sending` all that time). The publish of an incoming message is
// held open here (a slow event log); the engine is the simulated one.
import { strict as assert } from "node:assert";
import { heldStep, simulatedRuntime } from "./simulated-runtime.ts";

describe("session/runtime: a send while incoming messages wait to be published", () => {
  it("is answered at once, not after the session's queue of changes", async () => {
    const publish = heldStep();
    let incomingPublished = false;
    const { runtime, connected } = simulatedRuntime({
      publisher: {
        record: async (event, payload) => {
          if (event === "account.message") {
            await publish.held;
            incomingPublished = true;
          }
          return payload;
        },
        send: () => undefined,
      },
    });
    const simulate = await connected("acc3");
    await simulate.message("4915100000001", "hello"); // its publish now waits
    try {
      const sent = await runtime.send("acc3", { to: "4915100000001", type: "text", text: "hi" });
      assert.match(sent.id, /^true_/);
      assert.equal(incomingPublished, false, "answered while the incoming message still waits");
    } finally {
      publish.release();
    }
    await runtime.stopAll();
  });
});
