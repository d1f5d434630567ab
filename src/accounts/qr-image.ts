// The PNG data URL of a QR payload. Account documents keep only the payload (`StoredQr`, ~200 bytes
// instead of a ~4.7 kB data URL): every account query that FerretDB's SQLite backend cannot serve from
// the `_id` primary key decodes every document of the collection, so document size is write latency.
// The image is rendered where a QR is shown (the runtime's event, the snapshot), identical each time.
import QRCode from "qrcode";
import type { QrView, StoredQr } from "./types.ts";

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

/** The stored form of a QR (no image). */
export function storedQr(qr: { qr: string; seq: number; expiresAt: number }): StoredQr {
  return { qr: qr.qr, seq: qr.seq, expiresAt: qr.expiresAt };
}

/** The public view `{qr, dataUrl, seq, expiresAt}` of a stored QR (documents written before the image
 * was dropped still carry one). */
export async function qrViewOf(qr: StoredQr): Promise<QrView> {
  const dataUrl = qr.dataUrl ?? (await qrDataUrl(qr.qr));
  return { qr: qr.qr, dataUrl, seq: qr.seq, expiresAt: qr.expiresAt };
}
