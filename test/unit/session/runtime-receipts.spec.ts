// A receipt behind what the message already has (`delivered` after `read`: receipts can arrive out of
// order), or the same as one before (a repeat), is published to no listener: sockets, the log and
// webhooks see each of a message's statuses once, moving forward only, as GET …/messages/:id does. The
// status store's answer is given here (on the real server: message-status.spec.ts, and
// messages/receipts.spec.ts end to end).
import { strict as assert } from "node:assert";
import { waitFor } from "../../support/wait.ts";
import { simulatedRuntime } from "./simulated-runtime.ts";

describe("session/runtime: receipts of a sent message", () => {
  it("publishes each one the store found news, and none it found the same or behind", async () => {
    const published: string[] = [];
    const { runtime, connected } = simulatedRuntime({
      publisher: {
        record: async (event, payload) => {
          if (event === "account.message_ack") published.push((payload as { status: string }).status);
          return payload;
        },
        send: () => undefined,
      },
      // As if `sent` had come before (a repeat) and `read` before `delivered`.
      recordAck: async (ack) =>
        ack.status === "delivered" ? "behind" : ack.status === "sent" ? "same" : "advanced",
    });
    await connected("acc6");
    await runtime.send("acc6", { to: "4915100000001", type: "text", text: "hi" });
    await waitFor(() => published.includes("read"), { what: "the read receipt" });
    assert.deepEqual(published, ["read"]);
    await runtime.stopAll();
  });
});
