// Our whatsapp-web.js auth strategy over the AuthStore (not the stock RemoteAuth, whose path handling
// changed across 1.34.x and which deletes the remote session on any non-transient disconnect).
// The browser profile of a session lives in its own directory; the part of it that holds WhatsApp's
// credentials (IndexedDB and Local Storage) travels to MongoDB as a gzipped tar blob.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { Browser, Page } from "puppeteer-core";
import type { Client } from "whatsapp-web.js";
import type { AuthStore } from "../../store/auth-store.ts";
import type { EngineOptions } from "../base.ts";

const require = createRequire(import.meta.url);
// Not exported by the package's index; it is the documented base of every strategy.
const BaseAuthStrategy: new () => {
  client?: Client;
} = require("whatsapp-web.js/src/authStrategies/BaseAuthStrategy.js");

/** Profile paths (relative to the user data dir) that hold a linked device's credentials. */
export const PROFILE_SUBSET = ["Default/IndexedDB", "Default/Local Storage"];

/** Longer than Chromium's delay before it commits Local Storage changes to disk (5 s). */
const STORAGE_COMMIT_SETTLE_MS = 7000;

function run(cmd: string, args: string[], input?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let err = "";
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => (err += b.toString()));
    child.once("error", reject);
    // A child that exits before it has read all its input (tar given a blob that is not gzip, or killed
    // mid-extract) fails the write with EPIPE; unheard, that error would end the process. The exit
    // code below reports the failure.
    child.stdin.on("error", () => undefined);
    child.once("close", (code) => {
      // GNU tar exits 1 when a file changed while it was read (a live profile); the archive is usable.
      if (code === 0 || (code === 1 && cmd === "tar" && args[0] === "-czf")) resolve(Buffer.concat(out));
      else reject(new Error(`${cmd} exited ${code}: ${err.trim().slice(-500)}`));
    });
    child.stdin.end(input);
  });
}

/** The credential subset of a profile as a .tar.gz, or null when the profile holds none yet. */
export async function packProfile(userDataDir: string): Promise<Buffer | null> {
  const present = PROFILE_SUBSET.filter((p) => existsSync(join(userDataDir, p)));
  if (present.length === 0) return null;
  return run("tar", ["-czf", "-", "--warning=no-file-changed", "-C", userDataDir, ...present]);
}

/** tar's words for an input that is no archive of ours (another engine's state, a damaged blob), as
 * opposed to a failure of this host (a full disk, a directory it may not write). */
const NOT_AN_ARCHIVE =
  /not in gzip format|does not look like a tar archive|unexpected end of file|invalid compressed data|Unexpected EOF|Skipping to next header|Archive contains obsolescent/i;

/** The saved profile could not be unpacked for a reason of this host (disk full, permissions): the
 * device is still linked, so the start fails (and is retried) rather than showing a QR. */
export class ProfileRestoreError extends Error {}

/** Unpacks a blob made by packProfile into `userDataDir`. */
export async function unpackProfile(userDataDir: string, blob: Buffer): Promise<void> {
  await mkdir(userDataDir, { recursive: true });
  await run("tar", ["-xzf", "-", "-C", userDataDir], blob);
}

export class RestoreAbortedError extends Error {}

/** `work`, unless `signal` aborts first (then RestoreAbortedError; `work`'s own end is ignored). */
function unlessAborted<T>(work: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return work;
  work.catch(() => undefined); // a rejection of the abandoned load is nobody's concern
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new RestoreAbortedError("restoring the auth state was called off"));
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

export interface ProfileAuthOptions {
  sessionId: string;
  userDataDir: string;
  authStore: AuthStore;
  /** Periodic save while connected. @default 300000 */
  saveIntervalMs: number;
  /** The session is ready, its profile a linked device worth saving: periodic saves are armed and run
   * only while this holds (not once its engine stopped, nor while its page shows a QR). @default always */
  linked?: () => boolean;
  logger?: EngineOptions["logger"];
}

/**
 * whatsapp-web.js calls these hooks; the engine calls `restore()` before it launches Chromium (it
 * launches the browser itself) and `save()` when it wants the state persisted now.
 */
export class ProfileAuthStrategy extends BaseAuthStrategy {
  /** A profile came from the AuthStore at the last restore. */
  restored = false;
  /** A restore is waiting for the AuthStore's answer (the start watchdog names it when it fires). */
  loading = false;
  /** The device was unlinked: nothing may be saved any more. */
  private loggedOut = false;
  private timer: NodeJS.Timeout | null = null;
  private settleTimer: NodeJS.Timeout | null = null;
  private saving: Promise<boolean> = Promise.resolve(false);
  /** Told about each browser whatsapp-web.js connects to (the engine watches its DevTools link). */
  onBrowser: ((browser: { once(event: "disconnected", fn: () => void): unknown }) => void) | null = null;

  constructor(private readonly opts: ProfileAuthOptions) {
    super();
  }

  /**
   * Unpacks the saved profile subset, if any, into the (fresh) profile directory. Aborting `signal`
   * rejects it at once while the state is still loading (a database that does not answer must not hold
   * a stop), and the load it abandons never unpacks: the profile directory may be the next engine's.
   */
  async restore(signal?: AbortSignal): Promise<boolean> {
    this.loggedOut = false; // a new start may link a device again
    await mkdir(this.opts.userDataDir, { recursive: true });
    this.restored = false;
    this.loading = true;
    let blob: Buffer | null;
    try {
      blob = await unlessAborted(this.opts.authStore.load(this.opts.sessionId), signal);
    } finally {
      this.loading = false;
    }
    if (signal?.aborted) throw new RestoreAbortedError("restoring the auth state was called off");
    if (!blob) return false;
    try {
      await unpackProfile(this.opts.userDataDir, blob);
      this.restored = true;
    } catch (err) {
      const message = (err as Error).message;
      if (!NOT_AN_ARCHIVE.test(message)) throw new ProfileRestoreError(message);
      // e.g. a blob of another engine: start as a new device rather than not at all.
      this.opts.logger?.warn(`auth state of ${this.opts.sessionId} is not a webjs profile, ignored:`, err);
    }
    return this.restored;
  }

  /** Saves the profile subset now (serialized: one save at a time). False when there was nothing to save. */
  save(): Promise<boolean> {
    this.saving = this.saving
      .catch(() => false)
      .then(async () => {
        if (this.loggedOut) return false;
        const blob = await packProfile(this.opts.userDataDir);
        if (!blob || this.loggedOut) return false;
        await this.opts.authStore.save(this.opts.sessionId, blob);
        return true;
      });
    return this.saving;
  }

  stopPeriodicSave(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.settleTimer) clearTimeout(this.settleTimer);
    this.timer = null;
    this.settleTimer = null;
  }

  /** Resolves once no save is under way (the engine removes the profile only then: a save still
   * packing it would store what is left of it). */
  async idle(): Promise<void> {
    await this.saving.catch(() => undefined);
  }

  /** Deletes the saved state (the device was unlinked); nothing is saved after it. Throws when the
   * delete fails (the engine's logout reports it). */
  async forget(): Promise<void> {
    this.loggedOut = true;
    this.stopPeriodicSave();
    // A save already uploading would otherwise land after the delete and resurrect the state.
    await this.idle();
    await this.opts.authStore.delete(this.opts.sessionId);
  }

  // ---- whatsapp-web.js hooks ----
  // Some are called from a page listener of whatsapp-web.js whose rejection nobody handles (on the
  // phone's logout: logout, then afterBrowserInitialized), where a rejection would end the process.
  // Those never reject: the engine does the same work on its own path and reports what failed.

  async afterBrowserInitialized(): Promise<void> {
    // Connected over DevTools, whatsapp-web.js opens a tab of its own: close Chromium's initial one.
    const client = this.client as { pupBrowser?: Browser; pupPage?: Page } | undefined;
    if (client?.pupBrowser) this.onBrowser?.(client.pupBrowser);
    const pages: Page[] = (await client?.pupBrowser?.pages?.().catch(() => [])) ?? [];
    await Promise.all(
      pages.filter((p) => p !== client?.pupPage).map((p) => p.close().catch(() => undefined)),
    );
  }

  async onAuthenticationNeeded() {
    if (this.restored) {
      // The restored device is no longer linked: its state is worthless. A new QR follows.
      this.opts.logger?.warn(
        `saved auth state of ${this.opts.sessionId} is no longer linked; a new QR follows`,
      );
      this.restored = false;
      await this.opts.authStore.delete(this.opts.sessionId).catch(() => undefined);
    }
    return { failed: false, restart: false, failureEventPayload: undefined };
  }

  async getAuthEventPayload(): Promise<void> {}

  /** The engine saves once before it announces `ready`; from then on, periodically. whatsapp-web.js
   * calls this right after `ready` without awaiting anything: it may come after the engine stopped,
   * when the profile directory may already be the next engine's, and then arms nothing. */
  async afterAuthReady(): Promise<void> {
    this.stopPeriodicSave();
    const linked = this.opts.linked ?? (() => true);
    if (!linked()) return;
    const save = () => {
      // The page showed a QR since (its profile is no linked device now): the saved state stays.
      if (!linked()) return;
      this.save().catch((err) => this.opts.logger?.warn(`periodic auth state save failed:`, err));
    };
    this.timer = setInterval(save, this.opts.saveIntervalMs);
    this.timer.unref();
    // Chromium commits Local Storage to disk seconds after a write, so the save at ready may miss the
    // newest link state; one more once that commit has surely happened makes a failover need no QR.
    this.settleTimer = setTimeout(save, STORAGE_COMMIT_SETTLE_MS);
    this.settleTimer.unref();
  }

  /** Called by whatsapp-web.js before it reports a non-transient state; the state stays saved. */
  async disconnect(): Promise<void> {}

  async destroy(): Promise<void> {
    this.stopPeriodicSave();
  }

  async beforeBrowserInitialized(): Promise<void> {}

  /** The phone unlinked the device (the engine's own path, session-events.ts, forgets the state too
   * and reports a failure). */
  async logout(): Promise<void> {
    await this.forget().catch((err) =>
      this.opts.logger?.warn(`deleting the auth state of ${this.opts.sessionId} failed:`, err),
    );
  }
}
