// A receipt behind what the message already has (`delivered` after `read`: receipts can arrive out of
// order) is recorded nowhere and published to no listener: sockets, the log and webhooks see a
// message's statuses move forward only, as GET …/messages/:id does. The status store's answer is
// given here (its own spec runs on the real server: message-status.spec.ts).
import { strict as assert } from "node:assert";
import { waitFor } from "../../support/wait.ts";
import { simulatedRuntime } from "./simulated-runtime.ts";

describe("session/runtime: receipts of a sent message", () => {
  it("publishes each one the store did not find behind, and none it did", async () => {
    const published: string[] = [];
    const { runtime, connected } = simulatedRuntime({
      publisher: {
        record: async (event, payload) => {
          if (event === "account.message_ack") published.push((payload as { status: string }).status);
          return payload;
        },
        send: () => undefined,
      },
      // As if `read` had come first: `delivered` is behind it; `sent` was recorded by the send itself.
      recordAck: async (ack) =>
        ack.status === "delivered" ? "behind" : ack.status === "sent" ? "same" : "advanced",
    });
    await connected("acc6");
    await runtime.send("acc6", { to: "4915100000001", type: "text", text: "hi" });
    await waitFor(() => published.includes("read"), { what: "the read receipt" });
    assert.deepEqual(published, ["sent", "read"]);
    await runtime.stopAll();
  });
});
