// The PNG data URL of a QR payload, rendered where a QR is shown (the runtime's event and its answer
// to `session.qr`/`session.qrs`), identical each time. QRs are not stored: they live in the runtime of
// the account's owner for as long as they are valid (see src/session/status-run.ts).
import { BoundedMap } from "../bounded-map.ts";
import { qrMatrix } from "./qr-mask.ts";
import { qrPng } from "./qr-png.ts";
import type { QrView } from "../accounts/types.ts";

/** Recently rendered payloads: a snapshot of a busy workspace, or many sockets' snapshots, render once. */
const CACHE_MAX = 500;
const cache = new BoundedMap<string, string>(CACHE_MAX);

function render(qr: string): string {
  // One byte-mode segment: the payload is base64 text, which byte mode encodes at the same version;
  // letting the library search for the best mix of modes doubles the cost.
  return `data:image/png;base64,${qrPng(qrMatrix(Buffer.from(qr)), { scale: 4, margin: 2 }).toString("base64")}`;
}

/** The PNG data URL of `qr` (4 pixels a module, a quiet zone of 2). Throws when it cannot be encoded. */
export function qrDataUrl(qr: string): string {
  let url = cache.get(qr);
  if (!url) {
    url = render(qr);
    cache.set(qr, url);
  }
  return url;
}

/**
 * Renders a few QRs of a WhatsApp payload's size, cached nowhere. The first QRs a process renders are
 * slow (the library sets up its tables, the code is not compiled yet): a worker pays that while it
 * starts instead of its first customers.
 */
export function warmUpQrRendering(rounds = 8): void {
  for (let i = 0; i < rounds; i++) render(`2@${"warm-up.".repeat(30)}${i}`);
}

/** The public view `{qr, dataUrl, seq, expiresAt}` of an engine's QR. */
export function qrViewOf(qr: Omit<QrView, "dataUrl">): QrView {
  return { qr: qr.qr, dataUrl: qrDataUrl(qr.qr), seq: qr.seq, expiresAt: qr.expiresAt };
}
