// Retry delays: exponential with "equal jitter" (half fixed, half random), capped. The fixed half keeps
// a floor under the delay; the random half spreads retries of many endpoints that failed together.

export interface BackoffOptions {
  /** Delay before the 2nd attempt, doubled for each further one. @default 1000 */
  baseMs: number;
  /** Upper bound of a delay. @default 300000 */
  maxMs: number;
}

/** Delay in ms after failed attempt number `attempt` (1-based) before the next one. */
export function backoffDelay(
  attempt: number,
  opts: BackoffOptions,
  random: () => number = Math.random,
): number {
  const exp = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.max(0, attempt - 1));
  const half = exp / 2;
  return Math.round(half + random() * half);
}
