// The mask of a QR symbol, chosen as the `qrcode` package chooses it (the lowest penalty of ISO/IEC
// 18004's four rules, the lowest mask on a tie), in half its time. The package scores each of the eight
// masks by applying it to its matrix and walking it through per-module function calls, where random
// data makes every branch a coin toss: most of rendering a WhatsApp QR, and the largest item of a
// worker's CPU in a burst of creates. Here the package builds the symbol once, under mask 0; each mask
// is one XOR away from it (a table per symbol size), and is scored in flat, mostly branch-free loops.
// The matrix is the one the package would have made (test/unit/qr/qr-mask.spec.ts compares them):
// 0.46–0.49 ms a WhatsApp QR against 0.85–0.92 ms.
import QRCode from "qrcode";
import type { QrMatrix } from "./qr-png.ts";

/** Error correction level L's two bits in the format information. */
const LEVEL_L_BITS = 0b01;

/** The 15 format information bits of level L and `mask`: BCH(15,5), then XOR 101010000010010. */
function formatBits(mask: number): number {
  const data = (LEVEL_L_BITS << 3) | mask;
  let rem = data << 10;
  for (let bit = 14; bit >= 10; bit--) if (rem & (1 << bit)) rem ^= 0b10100110111 << (bit - 10);
  return ((data << 10) | rem) ^ 0b101010000010010;
}

/** Where format bit i goes, twice: beside the top-left finder, and split between the other two. */
function formatPositions(size: number): [number, number][][] {
  return Array.from({ length: 15 }, (_, i) => [
    [i < 6 ? i : i < 8 ? i + 1 : size - 15 + i, 8],
    [8, i < 8 ? size - i - 1 : i === 8 ? 7 : 14 - i],
  ]);
}

function isMasked(mask: number, row: number, col: number): boolean {
  switch (mask) {
    case 0:
      return (row + col) % 2 === 0;
    case 1:
      return row % 2 === 0;
    case 2:
      return col % 3 === 0;
    case 3:
      return (row + col) % 3 === 0;
    case 4:
      return (Math.floor(row / 2) + Math.floor(col / 3)) % 2 === 0;
    case 5:
      return ((row * col) % 2) + ((row * col) % 3) === 0;
    case 6:
      return (((row * col) % 2) + ((row * col) % 3)) % 2 === 0;
    default:
      return (((row * col) % 3) + ((row + col) % 2)) % 2 === 0;
  }
}

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

interface Layout {
  /** Per mask, 1 where a data module differs from mask 0 (a symbol under mask 0, XOR this, is the
   * symbol under the mask, format bits aside). */
  fromMask0: Uint8Array[];
  /** Per format bit, its two indexes. */
  format: Uint32Array[];
}

/** Per symbol size (a version: its function patterns, so its data modules, are fixed). */
const layouts = new Map<number, Layout>();

function layoutOf(size: number, reserved: Uint8Array): Layout {
  let layout = layouts.get(size);
  if (!layout) {
    const flips = Array.from({ length: 8 }, (_, mask) => {
      const bits = new Uint8Array(size * size);
      for (let i = 0; i < bits.length; i++)
        if (!reserved[i] && isMasked(mask, Math.floor(i / size), i % size)) bits[i] = 1;
      return bits;
    });
    const fromMask0 = flips.map((bits) => bits.map((bit, i) => bit ^ flips[0]![i]!));
    const format = formatPositions(size).map((pair) =>
      Uint32Array.from(pair, ([row, col]) => row! * size + col!),
    );
    layouts.set(size, (layout = { fromMask0, format }));
  }
  return layout;
}

/** The module matrix of `payload` in one byte-mode segment at level L, under its best mask. */
export function qrMatrix(payload: Buffer): QrMatrix {
  const { modules } = QRCode.create([{ data: payload, mode: "byte" }], {
    errorCorrectionLevel: "L",
    maskPattern: 0,
  });
  const size = modules.size;
  const underMask0 = modules.data;
  const { fromMask0, format } = layoutOf(
    size,
    (modules as unknown as { reservedBit: Uint8Array }).reservedBit,
  );
  let best = underMask0;
  let lowest = Infinity;
  const m = new Uint8Array(underMask0.length);
  const scratch = new Uint8Array(m.length);
  for (let mask = 0; mask < 8; mask++) {
    const flips = fromMask0[mask]!;
    for (let i = 0; i < m.length; i++) m[i] = underMask0[i]! ^ flips[i]!;
    const bits = formatBits(mask);
    for (let i = 0; i < 15; i++) {
      const bit = (bits >> i) & 1;
      m[format[i]![0]!] = bit;
      m[format[i]![1]!] = bit;
    }
    const score = penalty(m, size, scratch);
    if (score < lowest) {
      lowest = score;
      best = m.slice();
    }
  }
  return { size, data: best };
}
