// Stopping a workspace's sessions for a hand-off (drain, rebalance), within bounds. The graceful stop
// (each engine closes cleanly, then saves its auth state) can hang: a database connection that accepts
// and never answers holds the final save forever. Meanwhile the workspace runs nowhere (handed over:
// no node may claim it), a drain never ends, and a stopping node never lets go of its lease, so none of
// its workspaces fail over. Past the bound the sessions are killed and the hand-off goes on: a save
// that lands late is refused once the next owner has loaded the state under its newer epoch
// (auth-store.ts, fencing). A node's stop bounds the stop of what it kept the same way (worker-node.ts).
import { withTimeout } from "../with-timeout.ts";
import type { SessionHost } from "./worker-ownership.ts";

/** How long a hand-off waits for its workspace's sessions to close and save. A webjs session takes a
 * few seconds: its close 3 s at most (destroyTimeoutMs), the kill of what is left 5 s at most, then
 * its save. */
export const HAND_OVER_STOP_MS = 20_000;

/** How long a hand-off then waits for the kill of those sessions (webjs: the SIGKILL of its profile's
 * processes, 5 s at most) before it moves the workspace on all the same. */
export const HAND_OVER_KILL_MS = 5_000;

export interface HandOverBounds {
  /** @default HAND_OVER_STOP_MS */
  stopMs?: number;
  /** @default HAND_OVER_KILL_MS */
  killMs?: number;
}

/** Stops the workspace's sessions gracefully; past `stopMs` kills them, waiting `killMs` at most. */
export function stopForHandOver(
  host: SessionHost,
  workspaceId: string,
  bounds: HandOverBounds,
  logger: { warn(...a: unknown[]): void },
): Promise<void> {
  return stopWithin(
    {
      what: `Hand-off of workspace ${workspaceId}`,
      graceful: () => host.handOverWorkspace(workspaceId),
      kill: () => host.stopWorkspace(workspaceId),
      then: "moving the workspace on",
    },
    bounds,
    logger,
  );
}

/** A graceful stop bounded by `stopMs`, then a kill bounded by `killMs`; the warnings say which ran
 * out, and what is done next all the same (`then`). */
export async function stopWithin(
  stop: { what: string; graceful: () => Promise<unknown>; kill: () => Promise<unknown>; then: string },
  bounds: HandOverBounds,
  logger: { warn(...a: unknown[]): void },
): Promise<void> {
  const { stopMs = HAND_OVER_STOP_MS, killMs = HAND_OVER_KILL_MS } = bounds;
  const stopped = await withTimeout(
    stop.graceful().then(() => true),
    stopMs,
  );
  if (stopped) return;
  logger.warn(
    `${stop.what}: its sessions did not close and save within ${stopMs} ms ` +
      `(an engine's close or its final auth-state save hangs, e.g. on a database that does not answer): ` +
      `killing them and ${stop.then}`,
  );
  const killed = await withTimeout(
    stop.kill().then(() => true),
    killMs,
  );
  if (!killed) logger.warn(`${stop.what}: its kill did not finish within ${killMs} ms either`);
}
