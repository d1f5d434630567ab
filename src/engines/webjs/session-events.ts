// What the events of a live whatsapp-web.js client do to a webjs session: a QR goes to the QR screen,
// a pairing code is relayed, authenticated / ready / state changes move the phase, and a disconnect or
// a lost browser ends in a logout, a restart or a failure. events.ts translates the library's raw
// values and client.ts wires the Client to these handlers; the launch, restarts and teardown they lead
// to stay in engine.ts, whose WebjsEngine builds on this class and owns the state declared here.
import type { ProfileAuthStrategy } from "./auth.ts";
import type { LaunchedChromium } from "./chromium.ts";
import type { ClientHandlers } from "./client.ts";
import { WebjsDirectory } from "./directory.ts";
import { classifyDisconnect, classifyStartError } from "./events.ts";
import type { QrScreen } from "./qr-screen.ts";
import { withTimeout } from "../../with-timeout.ts";

export abstract class WebjsSessionEvents extends WebjsDirectory {
  protected abstract readonly auth: ProfileAuthStrategy;
  protected abstract readonly qrScreen: QrScreen;
  /** The session's Chromium while one runs. */
  protected abstract browser: LaunchedChromium | null;
  /** The number of the last pairing code asked for: whatsapp-web.js's 'code' event carries only the code. */
  protected abstract pairingPhone: string;
  /** When the recent restarts happened (the crash budget); a session that gets ready starts afresh. */
  protected abstract crashes: number[];
  /** The session has been ready since start(): only then is its profile worth saving. */
  protected abstract everReady: boolean;

  /** Restarts on the local profile with backoff, within the crash budget. */
  protected abstract scheduleRestart(cause: "crash" | "disconnected", why: string): void;
  /** Stops everything of this session (timers, launch, browser), then saves if asked and cleans. */
  protected abstract shutdown(opts: { save: boolean; graceful?: boolean }): Promise<void>;

  /** The handlers of the client of generation `gen` (createWhatsappClient drops events once it is stale). */
  protected clientHandlers(gen: number): ClientHandlers {
    const live = () => gen === this.generation;
    return {
      qr: (qr) => this.onQr(gen, qr),
      code: (code) => this.emit("pairing_code", { code, phoneNumber: this.pairingPhone }),
      authenticated: () => {
        this.armWatchdog(gen, "authenticated but not ready"); // the sync with the phone may stall
        this.qrScreen.clear();
        // WhatsApp Web reloaded while connected: the library injects again and says authenticated,
        // then ready. The device is still linked: the account stays connected (its `ready` is a repeat).
        if (this.phase === "connected") return;
        this.phase = "authenticated";
        this.emit("authenticated");
        this.settleStart();
      },
      authFailure: (message) =>
        this.background(this.fail(gen, "auth_failure", `Authentication failed: ${message}`)),
      ready: (info) => {
        this.clearWatchdog();
        this.everReady = true;
        this.crashes = [];
        // Saved before `connected` is announced: a failover right after it restores without a QR.
        this.background(async () => {
          await this.auth
            .save()
            .catch((err) => this.opts.logger?.warn("saving auth state after ready failed:", err));
          if (!live()) return;
          this.phase = "connected";
          this.emit("ready", info());
          this.settleStart();
        }, "ready");
      },
      state: (outcome, info) => {
        if (outcome.kind === "connected" && this.phase === "disconnected" && info()) {
          this.phase = "connected";
          this.emit("ready", info()!);
        } else if (outcome.kind === "transient" && this.phase === "connected") {
          this.phase = "disconnected";
          this.emit("disconnected", outcome.state);
        }
      },
      disconnected: (reason) => this.onDisconnected(gen, reason),
      message: (message) => this.emit("message", message),
      ack: (ack) => this.emit("message_ack", ack),
      browserLost: (why) => this.onBrowserLost(gen, why),
      injectionFailed: async (err) => {
        // A browser that died makes injection fail too: that is a crash, handled by onBrowserExit.
        const browser = this.browser;
        if (browser && (await withTimeout(browser.exited, 1000)) !== undefined) return;
        // Called from whatsapp-web.js's 'framenavigated' listener, where a rejection would be unhandled.
        if (live()) this.background(this.fail(gen, classifyStartError(err).reason, String(err)), "injection");
      },
    };
  }

  /** The QR policy's QRs are used up. */
  protected qrTimeout(gen: number): void {
    this.background(
      this.fail(gen, "qr_timeout", `QR code shown ${this.opts.qr.max} times without being scanned`),
    );
  }

  /** The Chromium process launched for generation `gen` has exited. */
  protected onBrowserExit(gen: number, browser: LaunchedChromium): void {
    if (this.browser !== browser) return;
    this.onBrowserLost(gen, `Chromium (pid ${browser.browserPid}) exited unexpectedly`);
  }

  private onQr(gen: number, raw: string): void {
    // The profile is no linked device's now: a stop must not save it over the saved state (a restart
    // on a profile a crash damaged would otherwise store it, and the good state would be gone).
    this.everReady = false;
    if (this.phase === "connected" || this.phase === "authenticated") {
      // The page came back unlinked (a reload that lost the link): first the link is gone, then a new
      // run of QRs (no step from connected straight to the QR screen).
      this.phase = "disconnected";
      this.emit("disconnected", "unlinked");
      this.qrScreen.reset();
    }
    this.qrScreen.offer(raw, () => gen === this.generation);
  }

  private onDisconnected(gen: number, reason: unknown): void {
    const outcome = classifyDisconnect(reason);
    if (outcome.kind === "qr_timeout") return this.qrTimeout(gen);
    this.generation++; // whatsapp-web.js destroys this browser itself: its exit is not a crash
    if (outcome.kind === "logged_out") {
      this.background(async () => {
        this.phase = "stopping";
        await this.auth.forget().catch((err) => this.opts.logger?.warn("deleting auth state failed:", err));
        try {
          await this.shutdown({ save: false });
        } finally {
          this.phase = "stopped";
          this.emit("logged_out");
        }
      }, "logout by the phone");
      return;
    }
    this.scheduleRestart("disconnected", outcome.reason);
  }

  private onBrowserLost(gen: number, why: string): void {
    if (gen !== this.generation) return;
    if (this.phase === "stopping" || this.phase === "stopped" || this.phase === "failed") return;
    this.generation++;
    this.scheduleRestart("crash", why);
  }
}
