// The view of a QR: the engine's payload with its rendered PNG, the same each time it is rendered.
import { strict as assert } from "node:assert";
import QRCode from "qrcode";
import { qrDataUrl, qrViewOf } from "../../../src/accounts/qr-image.ts";

describe("accounts/qr-image", () => {
  const payload = "2@abcdefghijklmnopqrstuvwxyz0123456789,noise,identity,adv";

  it("renders the same PNG data URL as before (errorCorrectionLevel L, margin 2)", async () => {
    const expected = await QRCode.toDataURL(payload, { errorCorrectionLevel: "L", margin: 2 });
    assert.equal(await qrDataUrl(payload), expected);
    const view = await qrViewOf({ qr: payload, seq: 1, expiresAt: 5 });
    assert.deepEqual(view, { qr: payload, dataUrl: expected, seq: 1, expiresAt: 5 });
  });

  it("renders a payload once however often it is shown", async () => {
    assert.equal(qrDataUrl(`${payload},again`), qrDataUrl(`${payload},again`));
  });
});
