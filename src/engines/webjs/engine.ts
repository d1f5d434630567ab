// The `webjs` engine's lifecycle: profile restore → Chromium launch → whatsapp-web.js on top, with a
// startup watchdog, crash restarts with backoff, and a stop() that always leaves nothing behind.
// What the client's events do lives in session-events.ts (their translation in events.ts), the auth
// strategy in auth.ts, process handling in chromium.ts.
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type wweb from "whatsapp-web.js";
import { DatabaseUnavailableError, InvalidStateError, SendInterruptedError } from "../../errors.ts";
import type { FailureReason } from "../../lifecycle/states.ts";
import { asDatabaseError } from "../../store/mongo.ts";
import type { EngineOptions, StopOptions } from "../base.ts";
import { ProfileAuthStrategy, ProfileRestoreError } from "./auth.ts";
import {
  killSessionProcesses,
  launchOnProfile,
  ChromiumLaunchError,
  removeSingletonFiles,
  type LaunchedChromium,
} from "./chromium.ts";
import { createWhatsappClient, requestQrRefresh } from "./client.ts";
import type { PipeTransport } from "./devtools-pipe.ts";
import { classifyStartError, toChatId } from "./events.ts";
import { QrScreen } from "./qr-screen.ts";
import { messageIdOf, sendThrough } from "./send.ts";
import { WebjsSessionEvents } from "./session-events.ts";
import type { OutboundMessage } from "../../messages/types.ts";
import { withTimeout } from "../../with-timeout.ts";
import { DEFAULTS, type WebjsEngineOptions, type WebjsTuning } from "./tuning.ts";

export type { WebjsEngineOptions, WebjsTuning } from "./tuning.ts";

export class WebjsEngine extends WebjsSessionEvents {
  readonly name = "webjs";
  readonly userDataDir: string;
  private readonly tuning: Required<Omit<WebjsTuning, "chromiumArgs">> & { chromiumArgs: string[] };
  protected readonly auth: ProfileAuthStrategy;
  protected readonly qrScreen: QrScreen;
  protected browser: LaunchedChromium | null = null;
  private client: wweb.Client | null = null;
  private abortLaunch: AbortController | null = null;
  /** The launch in flight (profile restore + Chromium spawn); stop() waits for it to unwind. */
  private launching: Promise<void> | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  protected pairingPhone = "";
  protected crashes: number[] = [];
  protected everReady = false;
  private stopping: Promise<void> | null = null;
  /** A forced stop came during the stop under way: its processes are killed and nothing is saved (the
   * fence may be gone already). */
  private forcedStop = false;

  constructor(opts: WebjsEngineOptions) {
    super(opts);
    this.tuning = { ...DEFAULTS, ...opts.webjs, chromiumArgs: opts.webjs?.chromiumArgs ?? [] };
    this.userDataDir = join(opts.profileDir ?? join(tmpdir(), "switchboard-profiles"), opts.sessionId);
    this.qrScreen = new QrScreen(opts.qr, {
      show: (event) => {
        this.clearWatchdog();
        this.phase = "qr";
        this.emit("qr", event);
        this.settleStart();
      },
      timeout: () => this.qrTimeout(this.generation),
      refresh: () => void requestQrRefresh(this.client),
    });
    this.auth = new ProfileAuthStrategy({
      sessionId: opts.sessionId,
      userDataDir: this.userDataDir,
      authStore: opts.authStore,
      saveIntervalMs: this.tuning.saveIntervalMs,
      linked: () => this.linked(),
      logger: opts.logger,
    });
  }

  /** Its browser runs a device that has been ready since its page last showed a QR, and no stop or
   * failure has begun: only such a profile may be saved periodically. */
  private linked(): boolean {
    const live =
      this.phase === "authenticated" || this.phase === "connected" || this.phase === "disconnected";
    return live && this.everReady && this.browser !== null;
  }

  /** Pid of the session's Chromium while one runs (tests and metrics). */
  get browserPid(): number | undefined {
    return this.browser?.browserPid;
  }

  /**
   * Restores the profile, launches Chromium and whatsapp-web.js, and resolves once that launch has
   * finished: the page showed a QR, the session is authenticated, the start failed, or its browser
   * was lost and a restart (which takes a turn of its own) is scheduled; so the runtime's start queue
   * really bounds concurrent Chromium launches.
   */
  async start(): Promise<void> {
    if (this.stopping) await this.stopping;
    if (this.phase !== "idle" && this.phase !== "stopped" && this.phase !== "failed") return;
    this.phase = "starting";
    this.crashes = [];
    this.everReady = false;
    this.qrScreen.reset();
    const settled = this.startSettling();
    this.background(this.launch(), "start");
    await settled;
  }

  async stop({ force = false }: StopOptions = {}): Promise<void> {
    if (this.stopping && force) {
      // A graceful stop is under way (destroy() may hang for seconds): the processes go now, and its
      // save is called off (it would pack a killed profile and store it under a fence that has gone).
      this.forcedStop = true;
      await this.killProcesses(this.browser?.pid);
    } else if (!this.stopping) {
      const wasLive = this.phase !== "failed" && this.phase !== "stopped" && this.phase !== "idle";
      if (wasLive) this.phase = "stopping";
      const save = wasLive && this.everReady && !force;
      this.forcedStop = force;
      this.stopping = this.shutdown({ save, graceful: !force }).finally(() => {
        if (this.phase === "stopping") this.phase = "stopped";
        this.stopping = null;
        this.forcedStop = false;
      });
    }
    await this.stopping;
  }

  async logout(): Promise<void> {
    const client = this.client;
    const wasConnected = this.phase === "connected" && client !== null;
    this.phase = "stopping"; // the LOGOUT navigation that follows is ours, not the phone's
    this.generation++;
    if (wasConnected) {
      // Unlinks the device on WhatsApp's side, then closes the browser.
      await withTimeout(
        client.logout().catch((err) => this.opts.logger?.warn("whatsapp-web.js logout failed:", err)),
        this.tuning.destroyTimeoutMs * 3,
      );
    }
    try {
      await this.auth.forget();
    } catch (err) {
      // The browser goes all the same, and the session ends `failed` rather than stay `connected`
      // with nothing running; a logout asked again deletes the state (Session.logout without engine).
      await this.fail(
        this.generation,
        "engine_error",
        `Deleting the auth state failed: ${(err as Error).message}`,
      );
      throw err;
    }
    try {
      await this.shutdown({ save: false });
    } finally {
      this.phase = "stopped";
      this.emit("logged_out");
    }
  }

  async requestPairingCode(phoneNumber: string): Promise<string> {
    const client = this.client;
    if (this.phase !== "qr" || !client) {
      throw new InvalidStateError(
        `A pairing code needs a session waiting for a link (session is ${this.phase})`,
      );
    }
    this.pairingPhone = phoneNumber.replace(/[^0-9]/g, "");
    // The code also arrives as whatsapp-web.js's 'code' event, which we relay as `pairing_code`.
    return client.requestPairingCode(this.pairingPhone);
  }

  async sendText(to: string, text: string): Promise<{ id: string }> {
    const client = this.client;
    if (this.phase !== "connected" || !client) {
      throw new InvalidStateError(`Cannot send a message: the session is ${this.phase}`);
    }
    const chatId = toChatId(to);
    // Typed as a Message, but whatsapp-web.js 1.34 answers null or undefined without sending.
    const sent = (await client.sendMessage(chatId, text)) as wweb.Message | null | undefined;
    return { id: messageIdOf(sent, { to, type: "text" }, chatId) };
  }

  async send(message: OutboundMessage): Promise<{ id: string }> {
    const client = this.client;
    if (this.phase !== "connected" || !client) {
      throw new InvalidStateError(`Cannot send a message: the session is ${this.phase}`);
    }
    const gen = this.generation;
    const { MessageMedia, Location } = (await import("whatsapp-web.js")).default;
    try {
      return await sendThrough(client, message, { MessageMedia, Location });
    } catch (err) {
      // The browser went mid-send (a stop, a crash, a hand-off): it may have left already.
      if (gen !== this.generation || this.client !== client)
        throw new SendInterruptedError(this.opts.accountId, (err as Error).message);
      throw err;
    }
  }

  protected connectedClient(what: string): wweb.Client {
    const client = this.client;
    if (this.phase !== "connected" || !client)
      throw new InvalidStateError(`Cannot ${what}: the session is ${this.phase}`);
    return client;
  }

  async flushAuthState(): Promise<void> {
    if (this.browser && this.everReady) await this.auth.save();
  }

  // ---- launch ----

  private async launch(restart = false): Promise<void> {
    const gen = ++this.generation;
    // A database that never answers the profile's download holds the start here: say so.
    this.armWatchdog(gen, () =>
      this.auth.loading
        ? "The saved auth state did not load from the database"
        : "No QR code and no connection",
    );
    const abort = new AbortController();
    this.abortLaunch = abort;
    // A restart runs on the local profile, not on the saved state: a QR it shows (a profile a crash
    // left damaged) says nothing of the saved state, which must not be deleted for it.
    if (restart) this.auth.restored = false;
    const run = async () => {
      const restore = restart ? null : (signal?: AbortSignal) => this.auth.restore(signal);
      this.browser = await launchOnProfile(this.userDataDir, restore, {
        executablePath: this.opts.chromiumPath ?? "/usr/bin/chromium",
        userDataDir: this.userDataDir,
        extraArgs: this.tuning.chromiumArgs,
        singleProcess: this.opts.chromiumSingleProcess,
        timeoutMs: this.tuning.launchTimeoutMs,
        signal: abort.signal,
        killTimeoutMs: this.tuning.killTimeoutMs,
        logger: this.opts.logger,
      });
      const browser = this.browser;
      if (browser) void browser.exited.then(() => this.onBrowserExit(gen, browser));
    };
    const step = run();
    this.launching = step.catch(() => undefined);
    try {
      await step;
    } catch (err) {
      if (gen !== this.generation) return;
      const { reason, message } = this.launchFailure(err);
      return this.fail(gen, reason, message);
    } finally {
      if (this.abortLaunch === abort) this.abortLaunch = null;
      this.launching = null;
    }
    if (gen !== this.generation || !this.browser) return;
    // Loaded on first use: nodes that never run a webjs session never load puppeteer.
    const { Client } = (await import("whatsapp-web.js")).default;
    if (gen !== this.generation || !this.browser) return;
    const client = this.createClient(Client, gen, this.browser.transport);
    this.client = client;
    try {
      await client.initialize();
      this.settleStart(); // whatsapp-web.js has loaded the page and waits for a link or a restore
    } catch (err) {
      if (gen !== this.generation) return;
      // A browser that died makes initialize() fail too; that is a crash, handled by onBrowserExit.
      const browser = this.browser;
      if (browser && (await withTimeout(browser.exited, 1000)) !== undefined) return;
      if (gen !== this.generation) return;
      const { reason, message } = classifyStartError(err);
      await this.fail(gen, reason, message);
    }
  }

  /** Why a launch (profile restore, then Chromium's spawn) failed. A database that did not answer
   * while the profile was restored is a failure time fixes: retried as a launch that failed. */
  private launchFailure(err: unknown): { reason: FailureReason; message: string } {
    if (err instanceof ChromiumLaunchError) return { reason: "browser_launch_failed", message: err.message };
    if (err instanceof ProfileRestoreError)
      return { reason: "browser_launch_failed", message: `Restoring the auth state failed: ${err.message}` };
    const outage = asDatabaseError(err);
    if (outage instanceof DatabaseUnavailableError) {
      // The driver's message names the database's address: it stays in this node's log.
      this.opts.logger?.warn(`session ${this.opts.sessionId}: restoring the auth state failed:`, err);
      return {
        reason: "browser_launch_failed",
        message: `Restoring the auth state failed: ${outage.message}`,
      };
    }
    return { reason: "engine_error", message: (err as Error).message };
  }

  /** A whatsapp-web.js Client on the launched browser; its events reach us only while `gen` is current. */
  private createClient(Client: typeof wweb.Client, gen: number, devtools: PipeTransport): wweb.Client {
    return createWhatsappClient(Client, {
      devtools,
      authStrategy: this.auth,
      qrMax: this.opts.qr.max,
      authTimeoutMs: this.opts.startupTimeoutMs ?? 60_000,
      isLive: () => gen === this.generation,
      handlers: this.clientHandlers(gen),
    });
  }

  // ---- restarts ----

  /** A crash or a fatal WhatsApp state: restart on the local profile with backoff, within a budget. */
  protected scheduleRestart(cause: "crash" | "disconnected", why: string): void {
    const gen = this.generation;
    const now = Date.now();
    this.crashes = this.crashes.filter((t) => now - t < this.tuning.crashWindowMs);
    this.crashes.push(now);
    this.clearWatchdog();
    this.qrScreen.clear();
    const attempt = this.crashes.length;
    // A start still waiting for its first QR or link ends here: it holds a turn of the node's start
    // queue, which the restart below waits for (with every turn so held, nothing would move).
    this.settleStart();
    if (attempt > this.tuning.maxCrashes) {
      const reason: FailureReason = cause === "crash" ? "browser_crashed" : "engine_error";
      this.background(this.fail(gen, reason, `${why}; gave up after ${attempt} restarts`));
      return;
    }
    this.opts.logger?.warn(
      `session ${this.opts.sessionId}: ${why}; restart ${attempt} of ${this.tuning.maxCrashes}`,
    );
    if (this.phase !== "disconnected") {
      this.phase = "disconnected";
      this.emit("disconnected", cause === "crash" ? "browser_crashed" : why);
    }
    // Exponential, with jitter so that browsers killed together (e.g. by the OOM killer) do not all
    // relaunch at the same moment; then a turn in the node's start queue, like a first start.
    const delay = this.tuning.restartBackoffMs * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5);
    this.background(async () => {
      await this.dropBrowser();
      if (gen !== this.generation) return;
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        if (gen !== this.generation) return;
        this.background(this.relaunch(gen), "restart");
      }, delay);
    }, "restart");
  }

  /**
   * A restart of generation `gen` when the start queue gives it a turn (unless stopped meanwhile). The
   * turn ends when the launch settles, at the latest once the start watchdog has had its say.
   */
  private async relaunch(gen: number): Promise<void> {
    const endTurn = (await this.opts.startTurn?.()) ?? (() => undefined);
    let backstop: NodeJS.Timeout | undefined;
    try {
      if (gen !== this.generation) return;
      this.qrScreen.reset();
      const launching = this.launch(true);
      this.background(launching, "restart");
      await Promise.race([
        launching.catch(() => undefined),
        new Promise((r) => (backstop = setTimeout(r, (this.opts.startupTimeoutMs ?? 60_000) + 5_000))),
      ]);
    } finally {
      clearTimeout(backstop);
      endTurn();
    }
  }

  // ---- teardown ----

  protected async fail(gen: number, reason: FailureReason, message: string): Promise<void> {
    if (gen !== this.generation) return;
    this.generation++;
    this.phase = "failed";
    try {
      // Processes first, so that once `failed` is visible nothing of the session runs any more.
      await this.shutdown({ save: false });
    } finally {
      // Even when the cleanup failed (logged by whoever awaits this): a session nobody is told has
      // failed is never retried.
      this.phase = "failed";
      this.emit("failed", reason, message);
      this.settleStart();
    }
  }

  /** Abandons the current browser (if any) and kills every process of the profile. Never throws (see
   * killProcesses). */
  private async dropBrowser(graceful = false): Promise<void> {
    const client = this.client;
    const browser = this.browser;
    this.client = null;
    this.browser = null;
    this.auth.stopPeriodicSave();
    if (client && graceful) {
      // A clean close lets Chromium flush the profile; it may throw or hang when the page is gone. One
      // budget covers the close and the exit, so a stop takes at most destroyTimeoutMs plus the kill.
      const deadline = Date.now() + this.tuning.destroyTimeoutMs;
      await withTimeout(
        client.destroy().catch(() => undefined),
        this.tuning.destroyTimeoutMs,
      );
      if (browser) await withTimeout(browser.exited, Math.max(0, deadline - Date.now()));
    }
    await this.killProcesses(browser?.pid);
  }

  /**
   * Kills every process of the profile. Processes that outlive SIGKILL (stuck in the kernel) are
   * logged, not thrown: nothing more can be done about them, and the teardown that called this must
   * still clean up, settle the start and announce how the session ended.
   */
  private async killProcesses(browserPid: number | undefined): Promise<void> {
    try {
      await killSessionProcesses(this.userDataDir, browserPid, this.tuning.killTimeoutMs);
    } catch (err) {
      this.opts.logger?.error(`webjs session ${this.opts.sessionId}: killing its processes failed:`, err);
    }
  }

  /** Stops everything of this session: timers, a launch in flight, the browser; then saves and cleans. */
  protected async shutdown(opts: { save: boolean; graceful?: boolean }): Promise<void> {
    this.generation++;
    this.clearWatchdog();
    this.qrScreen.clear();
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    try {
      this.abortLaunch?.abort();
      if (this.launching) await this.launching;
      await this.dropBrowser(opts.graceful ?? true);
      // A forced stop that came meanwhile killed the browser mid-close: no save (see stop()).
      if (opts.save && !this.forcedStop) {
        // The browser has closed cleanly: the profile on disk is complete and consistent.
        await this.auth
          .save()
          .catch((err) => this.opts.logger?.warn("saving auth state on stop failed:", err));
      }
      // A save still packing the profile (periodic, or the one after `ready`) finishes first: removed
      // under it, the profile would be stored truncated.
      await this.auth.idle();
      removeSingletonFiles(this.userDataDir);
      await rm(this.userDataDir, { recursive: true, force: true, maxRetries: 3 });
    } finally {
      this.settleStart();
    }
  }
}

export function createWebjsEngine(opts: EngineOptions): WebjsEngine {
  return new WebjsEngine(opts);
}
