// How whatsapp-web.js's events and errors map onto the engine contract (src/engines/webjs/events.ts).
import { strict as assert } from "node:assert";
import {
  classifyDisconnect,
  classifyStartError,
  classifyState,
  QrPolicyTracker,
  readyInfoOf,
  toChatId,
  toIncomingMessage,
} from "../../../src/engines/webjs/events.ts";

describe("webjs event mapping", () => {
  it("'disconnected' reasons: LOGOUT is logged out, the QR limit is qr_timeout, anything else restarts", () => {
    assert.deepEqual(classifyDisconnect("LOGOUT"), { kind: "logged_out" });
    assert.deepEqual(classifyDisconnect("Max qrcode retries reached"), { kind: "qr_timeout" });
    assert.deepEqual(classifyDisconnect("CONFLICT"), { kind: "restart", reason: "CONFLICT" });
    assert.deepEqual(classifyDisconnect("UNPAIRED"), { kind: "restart", reason: "UNPAIRED" });
  });

  it("'change_state': CONNECTED reconnects, OPENING/PAIRING/TIMEOUT are transient, the rest is ignored", () => {
    assert.deepEqual(classifyState("CONNECTED"), { kind: "connected" });
    for (const s of ["OPENING", "PAIRING", "TIMEOUT"])
      assert.deepEqual(classifyState(s), { kind: "transient", state: s });
    assert.deepEqual(classifyState("CONFLICT"), { kind: "ignore" });
  });

  it("start errors: network failures are whatsapp_unreachable with the error kept, injection timeouts startup_timeout", () => {
    const net = classifyStartError(new Error("net::ERR_NAME_NOT_RESOLVED at https://web.whatsapp.com/"));
    assert.equal(net.reason, "whatsapp_unreachable");
    assert.match(net.message, /net::ERR_NAME_NOT_RESOLVED at https:\/\/web\.whatsapp\.com\//);
    assert.equal(
      classifyStartError(new Error("net::ERR_CONNECTION_REFUSED at x")).reason,
      "whatsapp_unreachable",
    );
    assert.equal(
      classifyStartError(new Error("net::ERR_INTERNET_DISCONNECTED")).reason,
      "whatsapp_unreachable",
    );
    assert.equal(classifyStartError("auth timeout").reason, "startup_timeout"); // whatsapp-web.js throws strings
    assert.deepEqual(classifyStartError(new Error("boom")), { reason: "engine_error", message: "boom" });
  });

  it("client.info → ready info; messages → IncomingMessage; numbers → chat ids", () => {
    assert.deepEqual(
      readyInfoOf({ wid: { user: "4915112345", _serialized: "4915112345@c.us" }, pushname: "Ann" }),
      {
        phoneNumber: "4915112345",
        pushName: "Ann",
      },
    );
    assert.deepEqual(readyInfoOf({ wid: { _serialized: "15550001@c.us" } }), {
      phoneNumber: "15550001",
      pushName: undefined,
    });
    assert.deepEqual(
      toIncomingMessage({
        id: { _serialized: "false_1@c.us_AB" },
        from: "1@c.us",
        to: "2@c.us",
        body: "hi",
        timestamp: 1700000000,
      }),
      { id: "false_1@c.us_AB", from: "1", to: "2", text: "hi", timestamp: 1700000000 },
    );
    assert.equal(toChatId("+49 151-234 567"), "49151234567@c.us");
    assert.equal(toChatId("123-456@g.us"), "123-456@g.us");
    assert.equal(toIncomingMessage({ from: "123-456@g.us" }).from, "123-456@g.us", "group ids stay whole");
  });

  it("the QR policy: first QR valid firstTtlMs, then refreshMs each, at most `max`", () => {
    const tracker = new QrPolicyTracker({ firstTtlMs: 60000, refreshMs: 20000, max: 3 });
    assert.deepEqual(tracker.next("a", 1000), { qr: "a", seq: 1, expiresAt: 61000 });
    assert.deepEqual(tracker.next("b", 61000), { qr: "b", seq: 2, expiresAt: 81000 });
    assert.deepEqual(tracker.next("c", 81000), { qr: "c", seq: 3, expiresAt: 101000 });
    assert.equal(tracker.next("d", 101000), null, "the fourth QR is past the policy");
    assert.equal(tracker.shown, 3);
    tracker.reset();
    assert.equal(tracker.next("e", 0)?.seq, 1);
  });
});
