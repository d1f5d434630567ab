// The mask of a QR symbol, chosen as the `qrcode` package chooses it (the lowest penalty of ISO/IEC
// 18004's four rules, the lowest mask on a tie), in half its time. The package scores each of the eight
// masks by applying it to its matrix and walking it through per-module function calls, where random
// data makes every branch a coin toss: most of rendering a WhatsApp QR, and the largest item of a
// worker's CPU in a burst of creates. Here the package builds the symbol once, under mask 0; each mask
// is one XOR away from it (a table per symbol size, taken from the package's own symbols of the first
// payload of that size under each mask), and is scored in flat, mostly branch-free loops.
// The matrix is the one the package would have made (test/unit/qr/qr-mask.spec.ts compares them):
// 0.46–0.49 ms a WhatsApp QR against 0.85–0.92 ms.
import QRCode, { type QRCodeMaskPattern } from "qrcode";
import type { QrMatrix } from "./qr-png.ts";

/** Rules 1 and 3 along the rows of a size × size matrix of 0/1: a run of 5 or more alike, 3 + (length
 * - 5) each (3 when a run reaches 5, 1 for each module more); 1:1:3:1:1 dark-light with 4 light modules
 * on either side, 40 each. Branch-free where the data is random (mispredictions were most of it). */
function rowPenalty(m: Uint8Array, size: number): number {
  let runs = 0;
  let finders = 0;
  for (let row = 0, i = 0; row < size; row++) {
    let run = 0;
    let last = 2;
    let window = 0;
    for (let col = 0; col < size; col++, i++) {
      const v = m[i]!;
      run = run * (1 - ((v ^ last) & 1)) + 1;
      last = v;
      runs += RUN_POINTS[run < 6 ? run : 6]!;
      window = ((window << 1) & 0x7ff) | v;
      if (window === 0x5d0 || window === 0x05d) finders += col >= 10 ? 1 : 0;
    }
  }
  return runs + finders * 40;
}

/** Points a run earns as it reaches each length: 3 at 5, then 1 per module. */
const RUN_POINTS = Uint8Array.of(0, 0, 0, 0, 0, 3, 1);
/** Whether a 2 × 2 block with this many dark modules is of one colour. */
const ONE_COLOUR = Uint8Array.of(1, 0, 0, 0, 1);

/** The four penalty rules over a size × size matrix of 0/1; `scratch` holds its transpose. */
export function penalty(m: Uint8Array, size: number, scratch = new Uint8Array(m.length)): number {
  for (let row = 0, i = 0; row < size; row++)
    for (let col = 0; col < size; col++, i++) scratch[col * size + row] = m[i]!;
  let points = rowPenalty(m, size) + rowPenalty(scratch, size);
  // Rule 2: each 2 × 2 block of one colour, 3.
  let blocks = 0;
  for (let row = 0; row < size - 1; row++) {
    for (let i = row * size, end = i + size - 1; i < end; i++)
      blocks += ONE_COLOUR[m[i]! + m[i + 1]! + m[i + size]! + m[i + size + 1]!]!;
  }
  points += blocks * 3;
  // Rule 4: 10 for each 5 % the share of dark modules is away from half.
  let dark = 0;
  for (let i = 0; i < m.length; i++) dark += m[i]!;
  return points + Math.abs(Math.ceil((dark * 100) / m.length / 5) - 10) * 10;
}

/** The symbol of `payload` under `mask`: its modules, 1 where dark. */
function symbolOf(payload: Buffer, mask: QRCodeMaskPattern): { size: number; data: Uint8Array } {
  const { modules } = QRCode.create([{ data: payload, mode: "byte" }], {
    errorCorrectionLevel: "L",
    maskPattern: mask,
  });
  return { size: modules.size, data: Uint8Array.from(modules.data) };
}

/** Per symbol size (a version), per mask, 1 where the symbol under that mask differs from the one under
 * mask 0: the masked data modules and the format bits, which depend on the mask and the size only, so
 * the first payload of a size serves for all. */
const fromMask0 = new Map<number, Uint8Array[]>();

function flipsOf(payload: Buffer, underMask0: Uint8Array, size: number): Uint8Array[] {
  let flips = fromMask0.get(size);
  if (!flips) {
    flips = Array.from({ length: 8 }, (_, mask) =>
      symbolOf(payload, mask as QRCodeMaskPattern).data.map((bit, i) => bit ^ underMask0[i]!),
    );
    fromMask0.set(size, flips);
  }
  return flips;
}

/** The module matrix of `payload` in one byte-mode segment at level L, under its best mask. */
export function qrMatrix(payload: Buffer): QrMatrix {
  const { size, data: underMask0 } = symbolOf(payload, 0);
  const flips = flipsOf(payload, underMask0, size);
  let best = underMask0;
  let lowest = Infinity;
  const m = new Uint8Array(underMask0.length);
  const scratch = new Uint8Array(m.length);
  for (let mask = 0; mask < 8; mask++) {
    const flip = flips[mask]!;
    for (let i = 0; i < m.length; i++) m[i] = underMask0[i]! ^ flip[i]!;
    const score = penalty(m, size, scratch);
    if (score < lowest) {
      lowest = score;
      best = m.slice();
    }
  }
  return { size, data: best };
}
