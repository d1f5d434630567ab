// The QR screen of one webjs session: each QR from WhatsApp Web passes the QR policy (how many, how
// long each lives), and when ours expires before WhatsApp Web rotates it, WhatsApp Web is asked for a
// new one; should none come, the same QR is shown again with a new expiry, so the policy (count and
// timing) holds either way.
import type { QrEvent, QrPolicy } from "../base.ts";
import { QrPolicyTracker } from "./events.ts";

export interface QrScreenCallbacks {
  /** A QR to show. */
  show(event: QrEvent): void;
  /** The policy's QRs are used up: the session fails with `qr_timeout`. */
  timeout(): void;
  /** Ask WhatsApp Web for a new QR reference (it then arrives through `offer`). */
  refresh(): void;
}

export class QrScreen {
  private readonly policy: QrPolicyTracker;
  private timer: NodeJS.Timeout | null = null;
  private last = "";

  constructor(
    private readonly opts: QrPolicy,
    private readonly on: QrScreenCallbacks,
  ) {
    this.policy = new QrPolicyTracker(opts);
  }

  /** A new run of QRs (a fresh start or a restart). */
  reset(): void {
    this.clear();
    this.policy.reset();
  }

  /** A QR from WhatsApp Web. `live()` says whether the session that asked is still the current one. */
  offer(raw: string, live: () => boolean): void {
    this.last = raw;
    const event = this.policy.next(raw);
    if (!event) return this.on.timeout();
    this.on.show(event);
    this.clear();
    this.timer = setTimeout(
      () => {
        this.timer = null;
        if (!live()) return;
        if (this.policy.shown >= this.opts.max) return this.on.timeout();
        const shown = this.policy.shown;
        this.on.refresh();
        this.timer = setTimeout(
          () => {
            this.timer = null;
            if (live() && this.policy.shown === shown) this.offer(this.last, live);
          },
          Math.min(1000, Math.max(20, this.opts.refreshMs / 2)),
        );
      },
      Math.max(0, event.expiresAt - Date.now()),
    );
  }

  /** Nothing more is shown until the next `offer` (scanned, stopped, failed). */
  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
