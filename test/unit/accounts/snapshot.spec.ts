// The workspace snapshot: the stored accounts, with the QR their owner shows now laid over them.
import { strict as assert } from "node:assert";
import type { Caller } from "../../../src/accounts/calls.ts";
import { liveQrs, snapshotItems } from "../../../src/accounts/snapshot.ts";
import { newAccountDoc, type AccountDoc, type QrView } from "../../../src/accounts/types.ts";

function docOf(accountId: string, status: AccountDoc["status"]): AccountDoc {
  const p = {
    workspaceId: "ws",
    accountId,
    sessionId: `sim_ws_1_${accountId}`,
    name: accountId,
    engine: "sim",
  };
  return { ...newAccountDoc(p, new Date(0), null), status };
}

const QR: QrView = { qr: "2@abc", dataUrl: "data:image/png;base64,", seq: 1, expiresAt: 0 };

/** A caller that fails the test if the owner is asked at all. */
const noCall: Caller = {
  call: () => Promise.reject(new Error("session.qrs was asked")),
};
const silent = { warn: () => undefined };

describe("accounts snapshot", () => {
  it("shows an account with a QR on screen as scanning, even before its status write landed", () => {
    const items = snapshotItems(
      [docOf("a1", "initializing"), docOf("a2", "connected")],
      new Map([["a1", QR]]),
    );
    assert.equal(items[0].status, "qr_scanning");
    assert.deepEqual(items[0].qr, QR);
    assert.equal(items[1].status, "connected");
    assert.equal("qr" in items[1], false);
  });

  it("does not ask the owner when no account may be showing a QR", async () => {
    assert.equal((await liveQrs(noCall, [], silent)).size, 0);
    assert.equal((await liveQrs(noCall, [docOf("a1", "connected")], silent)).size, 0);
  });

  it("leaves the QRs out when the owner does not answer", async () => {
    const warned: string[] = [];
    const qrs = await liveQrs(noCall, [docOf("a1", "qr_scanning")], { warn: (m: string) => warned.push(m) });
    assert.equal(qrs.size, 0);
    assert.match(warned[0], /^accounts\.snapshot ws: QRs not available/);
  });
});
