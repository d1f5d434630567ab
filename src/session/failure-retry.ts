// Accounts that failed for a reason time may fix (WhatsApp unreachable, a browser that crashed or
// would not start) are started again by their owner, after a backoff that doubles with each failure
// in a row (with jitter, so a cluster's retries do not come at once). Failures that need a person
// (qr_timeout, auth_failure) are never retried; a connection resets the count.
import { RETRYABLE, type FailureReason } from "../lifecycle/states.ts";

export interface FailureRetryOptions {
  /** Delay before the first retry, doubled per failure in a row. @default 5000 */
  baseMs: number;
  /** Upper bound of a delay. @default 300000 */
  maxMs: number;
  /** Starts the account again (re-reading it: it may have been stopped, deleted or moved meanwhile). */
  retry: (accountId: string) => Promise<void>;
  logger: { info(...args: unknown[]): void; warn(...args: unknown[]): void };
}

/** The delay before retry number `failures` (1 = first): base × 2^(failures−1), capped, times 0.5–1. */
export function retryDelay(failures: number, baseMs: number, maxMs: number, random = Math.random): number {
  const full = Math.min(maxMs, baseMs * 2 ** Math.max(0, failures - 1));
  return Math.round(full * (0.5 + random() / 2));
}

export class FailureRetry {
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { workspaceId: string; timer: NodeJS.Timeout }>();
  /** Retries under way (their timer fired), by account: one forgotten meanwhile schedules no next. */
  private readonly running = new Map<string, { workspaceId: string }>();

  constructor(private readonly opts: FailureRetryOptions) {}

  /** The account's session ended `failed` with `reason`: schedules a start when the reason is retryable. */
  failed(accountId: string, workspaceId: string, reason: FailureReason | null): void {
    if (!reason || !RETRYABLE.has(reason)) {
      this.forget(accountId);
      return;
    }
    const n = (this.failures.get(accountId) ?? 0) + 1;
    this.failures.set(accountId, n);
    const delay = retryDelay(n, this.opts.baseMs, this.opts.maxMs);
    this.opts.logger.info(`Account ${accountId} failed/${reason} (${n} in a row): retrying in ${delay} ms`);
    this.cancel(accountId);
    const timer = setTimeout(() => {
      this.timers.delete(accountId);
      const run = { workspaceId };
      this.running.set(accountId, run);
      this.opts
        .retry(accountId)
        .catch((err: Error) => {
          // The retry itself failed (the database away as it read or claimed the account): nothing else
          // would start the account again (its record still says failed, under this node's fence), so
          // the next retry is scheduled, later; unless it was forgotten meanwhile (a stop, the node's
          // shutdown, the workspace moved away).
          this.opts.logger.warn(`Retrying ${accountId} failed: ${err.message}`);
          if (this.running.get(accountId) === run && !this.timers.has(accountId))
            this.failed(accountId, workspaceId, reason);
        })
        .finally(() => {
          if (this.running.get(accountId) === run) this.running.delete(accountId);
        });
    }, delay);
    timer.unref();
    this.timers.set(accountId, { workspaceId, timer });
  }

  /** The account connected: its next failure is the first in a row again. */
  connected(accountId: string): void {
    this.failures.delete(accountId);
  }

  /** No retry of the account (started, stopped or deleted by hand, or moved away). */
  forget(accountId: string): void {
    this.cancel(accountId);
    this.failures.delete(accountId);
  }

  /** No retries in a workspace this node no longer owns; none at all once `workspaceId` is omitted. */
  cancelWorkspace(workspaceId?: string): void {
    for (const [accountId, t] of [...this.timers, ...this.running])
      if (workspaceId === undefined || t.workspaceId === workspaceId) this.forget(accountId);
  }

  get pending(): number {
    return this.timers.size;
  }

  private cancel(accountId: string): void {
    const t = this.timers.get(accountId);
    if (t) clearTimeout(t.timer);
    this.timers.delete(accountId);
    this.running.delete(accountId);
  }
}
