// Receipts on a real cluster (gateway + worker, simulated engine, the status store on the real server):
// each status of a message reaches the event log (and so sockets and webhooks) once, however often
// WhatsApp tells it. The engine's `sent` after the send recorded `sent` itself is published, as the
// first receipt of a message nobody recorded a send of (sent from the phone); a repeat is not.
import { strict as assert } from "node:assert";
import type { AccountView } from "../../../src/accounts/types.ts";
import type { AckStatus } from "../../../src/messages/types.ts";
import type { SessionRuntime } from "../../../src/session/runtime.ts";
import { GatewayCluster } from "../api/helpers.ts";
import { LONG_QR, wholeLog } from "../events/support.ts";
import { waitFor } from "../../support/wait.ts";
import { OGG, connected, send } from "./support.ts";

describe("messages: receipts published once each", function () {
  this.timeout(60000);
  let gc: GatewayCluster;
  let key: string;
  let account: AccountView;

  before(async () => {
    gc = new GatewayCluster({
      qr: LONG_QR,
      rateLimitPerMinute: 100000,
      // Only the first receipt (`sent`) comes by itself; the spec tells the others.
      simulatedAckMs: 600000,
    });
    await gc.addGateway("gw");
    await gc.addWorker("w1");
    await gc.start();
    key = (await gc.createKey("acks")).key;
    account = await connected(gc, "acks", "sender");
  });
  after(async () => gc?.stop());

  /** The account's engine tells a receipt, as WhatsApp Web does (again, or for a message sent from the
   * phone); the simulated engine has no hook for it. */
  async function receipt(messageId: string, status: AckStatus): Promise<void> {
    const { runtime } = gc.workers[0].getLocalService("session") as unknown as { runtime: SessionRuntime };
    await runtime.drive(account.id, async (engine) => {
      engine.emit("message_ack", { id: messageId, status, at: Date.now() });
    });
  }

  /** The statuses of `messageId` in the event log, once `last` is among them. */
  async function published(messageId: string, last: AckStatus): Promise<string[]> {
    return waitFor(
      async () => {
        const statuses = (await wholeLog(gc.gw.broker, "acks"))
          .filter((e) => e.event === "account.message_ack" && (e.payload as any).messageId === messageId)
          .map((e) => (e.payload as any).status as string);
        return statuses.includes(last) ? statuses : null;
      },
      { what: `the ${last} receipt of ${messageId} in the event log` },
    );
  }

  it("a sent voice note: the engine's `sent` once, each repeat dropped, a late one dropped", async () => {
    const res = await send(gc.gw, key, account.id, {
      to: "4915100000002",
      type: "audio",
      media: { base64: OGG.toString("base64"), mimetype: "audio/ogg" },
    });
    assert.equal(res.json.status, "sent", String(res.body));
    const id = res.json.id as string;
    assert.deepEqual(await published(id, "sent"), ["sent"]);
    // Each news receipt is published after the ones told before it: once it is in the log, they were
    // decided.
    await receipt(id, "sent");
    await receipt(id, "delivered");
    assert.deepEqual(await published(id, "delivered"), ["sent", "delivered"]);
    await receipt(id, "delivered");
    await receipt(id, "sent");
    await receipt(id, "read");
    await receipt(id, "read");
    await receipt(id, "played");
    assert.deepEqual(await published(id, "played"), ["sent", "delivered", "read", "played"]);
    const status = await gc.gw.call(
      "GET",
      `/api/v1/accounts/${account.id}/messages/${encodeURIComponent(id)}`,
      {
        key,
      },
    );
    assert.equal(status.json.status, "played");
  });

  it("a message sent from the phone (no record of its send): its first receipt is news, a repeat not", async () => {
    const id = "true_4915100000003@c.us_3EB0PHONE0000000001";
    await receipt(id, "sent");
    await receipt(id, "sent");
    await receipt(id, "delivered");
    assert.deepEqual(await published(id, "delivered"), ["sent", "delivered"]);
  });
});
