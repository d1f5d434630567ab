// A workspace's logged events leave a node in log order: a broadcast waits for the lower positions
// this node logged and has not broadcast yet, for a while at most.
import { strict as assert } from "node:assert";
import { BroadcastOrder } from "../../../src/session/broadcast-order.ts";

function recorder(): { sent: string[]; broadcast: (event: string, payload: unknown) => string } {
  const sent: string[] = [];
  return {
    sent,
    broadcast: (event, payload) => {
      sent.push(`${event}@${(payload as { cursor?: string }).cursor ?? "-"}`);
      return "ok";
    },
  };
}

const at = (cursor: string, extra: object = {}) => ({ workspaceId: "ws", cursor, ...extra });

describe("session/broadcast-order", () => {
  it("holds a later position until the lower ones logged before it go out, then sends them in order", async () => {
    const { sent, broadcast } = recorder();
    const order = new BroadcastOrder(broadcast, 60_000);
    order.logged("ws", 5);
    order.logged("ws", 6);
    order.logged("ws", 7);
    const seventh = order.send("ws", "account.message", at("7"));
    const sixth = order.send("ws", "account.message", at("6"));
    assert.deepEqual(sent, [], "6 and 7 wait for 5");
    assert.equal(await order.send("ws", "account.status", at("5")), "ok");
    assert.deepEqual(await Promise.all([sixth, seventh]), ["ok", "ok"]);
    assert.deepEqual(sent, ["account.status@5", "account.message@6", "account.message@7"]);
    assert.equal(order.size, 0, "nothing left tracked");
  });

  it("sends at once what has no position, another workspace's, or a position it did not log", async () => {
    const { sent, broadcast } = recorder();
    const order = new BroadcastOrder(broadcast, 60_000);
    order.logged("ws", 1);
    await order.send("ws", "account.qr", { workspaceId: "ws" });
    await order.send("other", "account.status", { workspaceId: "other", cursor: "9" });
    await order.send("ws", "account.deleted", at("3"));
    await order.send(null, "account.status", {});
    assert.deepEqual(sent, ["account.qr@-", "account.status@9", "account.deleted@3", "account.status@-"]);
    assert.equal(order.size, 1, "position 1 still awaited");
  });

  it("stops waiting for a position never broadcast once it is holdMs old", async () => {
    const { sent, broadcast } = recorder();
    const order = new BroadcastOrder(broadcast, 40);
    order.logged("ws", 1); // its status write refused: never sent
    order.logged("ws", 2);
    const started = Date.now();
    await order.send("ws", "account.message", at("2"));
    assert.ok(Date.now() - started >= 30, "held for about holdMs");
    assert.deepEqual(sent, ["account.message@2"]);
    assert.equal(order.size, 0);
  });

  it("a position logged long ago and never sent holds nothing back", async () => {
    const { sent, broadcast } = recorder();
    let now = 1_000;
    const order = new BroadcastOrder(broadcast, 5_000, () => now);
    order.logged("ws", 1);
    now += 5_000;
    order.logged("ws", 2);
    await order.send("ws", "account.message", at("2"));
    assert.deepEqual(sent, ["account.message@2"]);
    assert.equal(order.size, 0);
  });

  it("a broadcast that throws or rejects fails only its own send", async () => {
    const order = new BroadcastOrder((event) => {
      if (event === "boom") throw new Error("transit down");
      return event === "reject" ? Promise.reject(new Error("no route")) : "ok";
    }, 60_000);
    order.logged("ws", 1);
    order.logged("ws", 2);
    order.logged("ws", 3);
    const third = order.send("ws", "fine", at("3"));
    const second = order.send("ws", "reject", at("2"));
    await assert.rejects(order.send("ws", "boom", at("1")), /transit down/);
    await assert.rejects(second, /no route/);
    assert.equal(await third, "ok");
  });
});
