// What a webjs session needs besides its browser: its phase, the generation that makes the events and
// steps of an abandoned browser harmless, the startup watchdog, the settling of start(), and work run
// in the background. WebjsEngine (engine.ts) builds the browser side on it.
import type { FailureReason } from "../../lifecycle/states.ts";
import { BaseEngine } from "../base.ts";
import type { Phase } from "./tuning.ts";

export abstract class WebjsLifecycle extends BaseEngine {
  protected phase: Phase = "idle";
  /** Bumped whenever the current browser is abandoned: events and steps of older ones are ignored. */
  protected generation = 0;
  private watchdog: NodeJS.Timeout | null = null;
  private startSettled: (() => void) | null = null;

  get status(): Phase {
    return this.phase;
  }

  /** Ends generation `gen` as `failed` (nothing when it is no longer the current one). */
  protected abstract fail(gen: number, reason: FailureReason, message: string): Promise<void>;

  /** What start() awaits: the launch has shown a QR, authenticated, or ended (settleStart). */
  protected startSettling(): Promise<void> {
    return new Promise<void>((resolve) => (this.startSettled = resolve));
  }

  protected settleStart(): void {
    const settle = this.startSettled;
    this.startSettled = null;
    settle?.();
  }

  /** `stage` names what did not happen in time; a function is asked when the watchdog fires. */
  protected armWatchdog(gen: number, stage: string | (() => string) = "No QR code and no connection"): void {
    this.clearWatchdog();
    const ms = this.opts.startupTimeoutMs ?? 60_000;
    this.watchdog = setTimeout(() => {
      this.watchdog = null;
      const what = typeof stage === "function" ? stage() : stage;
      this.background(this.fail(gen, "startup_timeout", `${what} within ${ms} ms`));
    }, ms);
  }

  protected clearWatchdog(): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = null;
  }

  /** Runs work nobody awaits; its failure is logged, never an unhandled rejection. */
  protected background(work: Promise<unknown> | (() => Promise<unknown>), what = "background step"): void {
    const promise = typeof work === "function" ? work() : work;
    promise.catch((err) =>
      this.opts.logger?.error(`webjs session ${this.opts.sessionId}: ${what} failed:`, err),
    );
  }
}
