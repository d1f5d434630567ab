// Waiting for a condition with a deadline: tests never sleep for a fixed time.

export interface WaitOptions {
  /** @default 10000 */
  timeoutMs?: number;
  /** @default 25 */
  intervalMs?: number;
  /** What is being waited for, shown when the deadline passes. */
  what?: string;
}

/** Polls `check` until it returns a truthy value (returned) or the deadline passes (throws). */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  opts: WaitOptions = {},
): Promise<NonNullable<T>> {
  const { timeoutMs = 10000, intervalMs = 25, what = "condition" } = opts;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const cause = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
