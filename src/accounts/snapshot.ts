// The workspace snapshot (`accounts.snapshot`): every account of a workspace as a dashboard shows it on
// connect, with the QR on screen now. QRs are never stored, so they are asked of the workspace's owner
// (`session.qrs`) and laid over the stored records here, apart from the service so the merge is plain.
import type { Logger } from "moleculer";
import { callSession, type Caller } from "./calls.ts";
import { toAccountView, type AccountDoc, type AccountSnapshotItem, type QrView } from "./types.ts";

/** The answer of `accounts.snapshot`. */
export interface AccountsSnapshot {
  items: AccountSnapshotItem[];
  /** Asked for (`withCursor`): the newest logged event as the snapshot was read, when there is one. */
  cursor?: string;
}

/** How long a snapshot waits for the owner's QRs. */
export const SNAPSHOT_QRS_TIMEOUT_MS = 3000;

/**
 * The QRs on screen of the workspace's accounts, asked of the workspace's owner (QRs are never
 * stored). Only asked when an account may be showing one; an owner that does not answer leaves
 * the snapshot without QRs (the next refresh reaches the socket).
 */
export async function liveQrs(
  caller: Caller,
  docs: AccountDoc[],
  logger: Pick<Logger, "warn">,
): Promise<Map<string, QrView>> {
  const qrs = new Map<string, QrView>();
  const workspaceId = docs[0]?.workspaceId;
  if (!workspaceId || !docs.some((d) => d.status === "qr_scanning" || d.status === "initializing"))
    return qrs;
  try {
    const res = await callSession(
      caller,
      "qrs",
      { workspaceId },
      // A snapshot waits for this; a QR missing from it is shown by the next refresh anyway.
      { timeout: SNAPSHOT_QRS_TIMEOUT_MS },
    );
    for (const item of res.items) qrs.set(item.accountId, item.qr);
  } catch (err) {
    logger.warn(`accounts.snapshot ${workspaceId}: QRs not available (${(err as Error).message})`);
  }
  return qrs;
}

/** The accounts as views, each with the QR its owner shows now (`qrs`, from liveQrs). */
export function snapshotItems(docs: AccountDoc[], qrs: Map<string, QrView>): AccountSnapshotItem[] {
  return docs.map((doc) => {
    const view: AccountSnapshotItem = toAccountView(doc);
    const qr = qrs.get(doc._id);
    if (qr) {
      // The owner shows it now (read after the record): its QR screen is the status, even when
      // the `qr_scanning` write (made right after the QR is shown) has not landed yet.
      view.qr = qr;
      view.status = "qr_scanning";
    }
    return view;
  });
}
