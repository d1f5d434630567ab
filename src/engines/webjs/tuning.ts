// The webjs engine's knobs beyond EngineOptions, its phases, and a timeout helper.
import type { EngineOptions } from "../base.ts";

/** Knobs of the webjs engine beyond EngineOptions (tests shorten them). */
export interface WebjsTuning {
  /** Periodic auth state save while connected. @default 300000 */
  saveIntervalMs?: number;
  /** First restart delay after a crash; doubles per crash. @default 1000 */
  restartBackoffMs?: number;
  /** Crashes tolerated within `crashWindowMs`; one more is `failed/browser_crashed`. @default 3 */
  maxCrashes?: number;
  /** @default 600000 */
  crashWindowMs?: number;
  /** How long a graceful close (destroy() and the browser's exit) may take before the processes are killed. @default 3000 */
  destroyTimeoutMs?: number;
  /** Chromium must open DevTools within this. @default 30000 */
  launchTimeoutMs?: number;
  /** How long a session's processes may outlive SIGKILL (stuck in the kernel) before the kill is given
   * up and logged. @default 5000 */
  killTimeoutMs?: number;
  /** Extra Chromium flags (e.g. `--host-resolver-rules` towards a local stand-in of WhatsApp Web). */
  chromiumArgs?: string[];
}

export type WebjsEngineOptions = EngineOptions & { webjs?: WebjsTuning };

export type Phase =
  | "idle"
  | "starting"
  | "qr"
  | "authenticated"
  | "connected"
  | "disconnected"
  | "stopping"
  | "stopped"
  | "failed";

export const DEFAULTS: Required<Omit<WebjsTuning, "chromiumArgs">> = {
  saveIntervalMs: 300_000,
  restartBackoffMs: 1000,
  maxCrashes: 3,
  crashWindowMs: 600_000,
  destroyTimeoutMs: 3000,
  launchTimeoutMs: 30_000,
  killTimeoutMs: 5000,
};
