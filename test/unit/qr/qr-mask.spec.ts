// src/qr/qr-mask.ts: the module matrix, mask chosen by penalty, is the one the `qrcode` package makes
// by itself, for payloads of every size a WhatsApp QR has and others (versions with and without version
// information), and each of the eight masks is reached. The payloads are the same every run.
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import QRCode from "qrcode";
import { penalty, qrMatrix } from "../../../src/qr/qr-mask.ts";

/** `length` bytes that look random and are the same every run. */
function bytesOf(seed: number, length: number): Buffer {
  const chunks: Buffer[] = [];
  for (let i = 0; chunks.length * 32 < length; i++)
    chunks.push(createHash("sha256").update(`${seed}:${i}`).digest());
  return Buffer.concat(chunks).subarray(0, length);
}

function packageMatrix(payload: Buffer): { data: Uint8Array; mask: number } {
  const sym = QRCode.create([{ data: payload, mode: "byte" }], { errorCorrectionLevel: "L" });
  return { data: Uint8Array.from(sym.modules.data), mask: sym.maskPattern as number };
}

describe("qr: mask choice (src/qr/qr-mask.ts)", () => {
  it("makes the package's matrix for 400 payloads of 20 to 600 bytes, WhatsApp's among them", () => {
    const masks = new Map<number, number>();
    for (let n = 0; n < 400; n++) {
      const length = n % 2 === 0 ? 197 : 20 + ((n * 37) % 580);
      const payload = Buffer.from(bytesOf(n, length).toString("base64").slice(0, length));
      const expected = packageMatrix(payload);
      const ours = qrMatrix(payload);
      masks.set(expected.mask, (masks.get(expected.mask) ?? 0) + 1);
      assert.equal(ours.size * ours.size, expected.data.length);
      assert.deepEqual(Uint8Array.from(ours.data), expected.data, `payload ${n} of ${length} bytes`);
    }
    // The same payloads every run: each mask is the best one for some of them.
    assert.equal(masks.size, 8, `masks chosen: ${JSON.stringify([...masks])}`);
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
