// A QR code as a 1-bit grayscale PNG: the image of every `account.qr` event, rendered on the owner's
// event loop. The `qrcode` package's own PNG path builds an RGBA image 32 times larger and packs it
// through a stream; this writes the bits straight into one deflate, far cheaper on the event loop and
// a much smaller data URL. Same geometry: `scale` pixels per module, `margin` modules of quiet zone,
// dark modules black on white.
import { crc32, deflateSync } from "node:zlib";

/** The module matrix of a QR symbol: `size` × `size`, row-major, non-zero where the module is dark. */
export interface QrMatrix {
  size: number;
  data: ArrayLike<number>;
}

export interface PngOptions {
  /** Pixels per module. @default 4 */
  scale?: number;
  /** Quiet zone around the symbol, in modules. @default 2 */
  margin?: number;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "latin1");
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** The PNG bytes of `matrix`. */
export function qrPng(matrix: QrMatrix, { scale = 4, margin = 2 }: PngOptions = {}): Buffer {
  if (!Number.isInteger(scale) || scale < 1)
    throw new RangeError(`scale must be a positive integer, got ${scale}`);
  if (!Number.isInteger(margin) || margin < 0)
    throw new RangeError(`margin must be an integer ≥ 0, got ${margin}`);
  const { size, data } = matrix;
  if (data.length < size * size)
    throw new RangeError(`matrix data holds ${data.length} modules, not ${size}²`);
  const width = (size + 2 * margin) * scale;
  const stride = 1 + Math.ceil(width / 8); // filter byte, then 8 pixels a byte (1 = white)
  const raw = Buffer.alloc(stride * width, 0xff);
  for (let y = 0; y < width; y++) raw[y * stride] = 0; // filter: none
  // Each module row drawn once, into its first pixel row, then copied into the other `scale - 1`.
  for (let my = 0; my < size; my++) {
    const first = (my + margin) * scale * stride;
    for (let mx = 0; mx < size; mx++) {
      if (!data[my * size + mx]) continue;
      const x0 = (mx + margin) * scale;
      for (let x = x0; x < x0 + scale; x++) raw[first + 1 + (x >> 3)] &= ~(0x80 >> (x & 7));
    }
    for (let k = 1; k < scale; k++) raw.copy(raw, first + k * stride + 1, first + 1, first + stride);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(width, 4);
  header[8] = 1; // bit depth
  header[9] = 0; // color type: grayscale
  // compression, filter and interlace methods: 0
  return Buffer.concat([
    SIGNATURE,
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}
