// src/qr/qr-mask.ts: the module matrix, mask chosen by penalty, is the one the `qrcode` package makes
// by itself, for payloads of every size a WhatsApp QR has and others (versions with and without version
// information), and each of the eight masks is reached.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import QRCode from "qrcode";
import { penalty, qrMatrix } from "../../../src/qr/qr-mask.ts";

function packageMatrix(payload: Buffer): { data: Uint8Array; mask: number } {
  const sym = QRCode.create([{ data: payload, mode: "byte" }], { errorCorrectionLevel: "L" });
  return { data: Uint8Array.from(sym.modules.data), mask: sym.maskPattern as number };
}

describe("qr: mask choice (src/qr/qr-mask.ts)", () => {
  it("makes the package's matrix for 400 payloads of 20 to 600 bytes, WhatsApp's among them", () => {
    const masks = new Set<number>();
    for (let n = 0; n < 400; n++) {
      const length = n % 2 === 0 ? 197 : 20 + ((n * 37) % 580);
      const payload = Buffer.from(randomBytes(length).toString("base64").slice(0, length));
      const expected = packageMatrix(payload);
      const ours = qrMatrix(payload);
      masks.add(expected.mask);
      assert.equal(ours.size * ours.size, expected.data.length);
      assert.deepEqual(Uint8Array.from(ours.data), expected.data, `payload of ${length} bytes`);
    }
    assert.equal(masks.size, 8, "every mask was the best one for some payload");
  });

  it("scores an all-light matrix on rules 1, 2 and 4, a checkerboard on none", () => {
    // 5 × 5 all light: rule 1, five runs of 5 in rows and in columns (3 each); rule 2, 16 blocks (3
    // each); rule 4, 0 % dark (10 × 10).
    assert.equal(penalty(new Uint8Array(25), 5), 30 + 48 + 100);
    // A checkerboard: no run, no block, no finder-like pattern, half dark.
    assert.equal(
      penalty(
        Uint8Array.from({ length: 36 }, (_, i) => (Math.floor(i / 6) + i) % 2),
        6,
      ),
      0,
    );
  });
});
