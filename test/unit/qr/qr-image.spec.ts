// The image of a QR: our 1-bit PNG must show exactly what the `qrcode` package's own PNG renderer
// shows for the same symbol (one byte-mode segment), pixel for pixel, read back by an independent
// decoder (pngjs).
import { strict as assert } from "node:assert";
import { createRequire } from "node:module";
import QRCode from "qrcode";
import { qrDataUrl, qrViewOf } from "../../../src/qr/qr-image.ts";
import { qrPng } from "../../../src/qr/qr-png.ts";

interface Decoded {
  width: number;
  height: number;
  /** RGBA, 4 bytes a pixel. */
  data: Buffer;
}
const { PNG } = createRequire(import.meta.url)("pngjs") as { PNG: { sync: { read(b: Buffer): Decoded } } };

function decode(dataUrl: string): Decoded {
  const match = /^data:image\/png;base64,(.+)$/.exec(dataUrl);
  assert.ok(match, `not a PNG data URL: ${dataUrl.slice(0, 40)}`);
  return PNG.sync.read(Buffer.from(match[1]!, "base64"));
}

/** The image as a string of 0 (dark) and 1 (light), one character a pixel. */
function pixels(img: Decoded): string {
  let out = "";
  for (let i = 0; i < img.width * img.height; i++) {
    const [r, g, b, a] = img.data.subarray(i * 4, i * 4 + 4);
    assert.ok(a === 255 && r === g && g === b && (r === 0 || r === 255), `pixel ${i} is not black or white`);
    out += r === 0 ? "0" : "1";
  }
  return out;
}

describe("qr/qr-image", () => {
  const payloads = [
    "2@abcdefghijklmnopqrstuvwxyz0123456789,noise,identity,adv",
    // The size of a real WhatsApp Web payload (~240 characters: a larger symbol).
    `2@${"Qk9ZQVJCSVRSQVJZUEFZTE9BRA".repeat(5)},${"a1b2c3d4".repeat(6)},${"ZmFrZWtleQ".repeat(5)},x`,
    "1",
  ];

  for (const payload of payloads) {
    it(`shows what qrcode's PNG renderer shows, pixel for pixel (${payload.length} chars)`, async () => {
      const reference = decode(
        await QRCode.toDataURL([{ data: Buffer.from(payload), mode: "byte" }], {
          errorCorrectionLevel: "L",
          margin: 2,
        }),
      );
      const ours = decode(qrDataUrl(payload));
      assert.equal(ours.width, reference.width);
      assert.equal(ours.height, reference.height);
      assert.equal(pixels(ours), pixels(reference));
    });
  }

  it("is much smaller than the RGBA rendering", async () => {
    const payload = payloads[1]!;
    const reference = await QRCode.toDataURL([{ data: Buffer.from(payload), mode: "byte" }], {
      errorCorrectionLevel: "L",
      margin: 2,
    });
    assert.ok(qrDataUrl(payload).length * 2 < reference.length, "less than half the size");
  });

  it("draws scale and margin as asked, odd widths included", () => {
    // A 3×3 matrix with its centre dark: scale 3, margin 1 → 15×15 pixels, dark from (6,6) to (8,8).
    const img = PNG.sync.read(qrPng({ size: 3, data: [0, 0, 0, 0, 1, 0, 0, 0, 0] }, { scale: 3, margin: 1 }));
    assert.equal(img.width, 15);
    const dark = [...pixels(img)].flatMap((p, i) => (p === "0" ? [[i % 15, Math.floor(i / 15)]] : []));
    assert.deepEqual(
      dark,
      [6, 7, 8].flatMap((y) => [6, 7, 8].map((x) => [x, y])),
    );
  });

  it("refuses a matrix shorter than its size, and a bad scale or margin", () => {
    assert.throws(() => qrPng({ size: 3, data: [1, 0] }), /holds 2 modules/);
    assert.throws(() => qrPng({ size: 1, data: [1] }, { scale: 0 }), /scale/);
    assert.throws(() => qrPng({ size: 1, data: [1] }, { margin: -1 }), /margin/);
  });

  it("gives the view {qr, dataUrl, seq, expiresAt}, the same each time", () => {
    const view = qrViewOf({ qr: payloads[0]!, seq: 1, expiresAt: 5 });
    assert.deepEqual(view, { qr: payloads[0], dataUrl: qrDataUrl(payloads[0]!), seq: 1, expiresAt: 5 });
    assert.equal(qrDataUrl(`${payloads[0]},again`), qrDataUrl(`${payloads[0]},again`));
  });
});
