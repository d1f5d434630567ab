// The PNG data URL of a QR payload, rendered where a QR is shown (the runtime's event and its answer
// to `session.qr`/`session.qrs`), identical each time. QRs are not stored: they live in the runtime of
// the account's owner for as long as they are valid (see src/session/status-run.ts).
import QRCode from "qrcode";
import type { QrView } from "./types.ts";

/** Recently rendered payloads: a snapshot of a busy workspace, or many sockets' snapshots, render once. */
const CACHE_MAX = 500;
const cache = new Map<string, Promise<string>>();

export function qrDataUrl(qr: string): Promise<string> {
  let url = cache.get(qr);
  if (!url) {
    url = QRCode.toDataURL(qr, { errorCorrectionLevel: "L", margin: 2 });
    url.catch(() => cache.delete(qr));
    cache.set(qr, url);
    if (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value!);
  }
  return url;
}

/** The public view `{qr, dataUrl, seq, expiresAt}` of an engine's QR. */
export async function qrViewOf(qr: Omit<QrView, "dataUrl">): Promise<QrView> {
  return { qr: qr.qr, dataUrl: await qrDataUrl(qr.qr), seq: qr.seq, expiresAt: qr.expiresAt };
}
