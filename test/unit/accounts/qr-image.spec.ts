// The stored QR keeps no image; the view rendered on read is the one the runtime's event carries.
import { strict as assert } from "node:assert";
import QRCode from "qrcode";
import { qrDataUrl, qrViewOf, storedQr } from "../../../src/accounts/qr-image.ts";

describe("accounts/qr-image", () => {
  const payload = "2@abcdefghijklmnopqrstuvwxyz0123456789,noise,identity,adv";

  it("stores the payload, seq and expiry only", () => {
    const view = { qr: payload, dataUrl: "data:image/png;base64,xx", seq: 2, expiresAt: 123 };
    assert.deepEqual(storedQr(view), { qr: payload, seq: 2, expiresAt: 123 });
  });

  it("renders the same PNG data URL as before (errorCorrectionLevel L, margin 2)", async () => {
    const expected = await QRCode.toDataURL(payload, { errorCorrectionLevel: "L", margin: 2 });
    assert.equal(await qrDataUrl(payload), expected);
    const view = await qrViewOf({ qr: payload, seq: 1, expiresAt: 5 });
    assert.deepEqual(view, { qr: payload, dataUrl: expected, seq: 1, expiresAt: 5 });
  });

  it("keeps the image of a document written with one", async () => {
    const view = await qrViewOf({ qr: payload, dataUrl: "data:image/png;base64,old", seq: 3, expiresAt: 9 });
    assert.equal(view.dataUrl, "data:image/png;base64,old");
  });
});
