// One way to try an operation again: how many times, how long to wait in between, which errors are
// worth it, and until when. A base module (node built-ins only) so every layer can use it.
import { setTimeout as sleep } from "node:timers/promises";

export interface RetryOptions {
  /** Tries in all (Infinity: until `shouldRetry` or `deadline` says stop). @default 3 */
  attempts?: number;
  /** Wait after failed try number `attempt` (1-based), or a fixed wait. @default 0 */
  delayMs?: number | ((attempt: number) => number);
  /** Whether the error of try number `attempt` is worth another try. @default every error */
  shouldRetry?: (err: unknown, attempt: number) => boolean;
  /** Time (ms since the epoch) after which no further try starts; the last error is thrown. @default none */
  deadline?: number;
}

/** Runs `op` until it succeeds or the options say stop, then throws its last error. */
export async function retry<T>(op: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const { attempts = 3, delayMs = 0, shouldRetry = () => true, deadline = Infinity } = options;
  for (let attempt = 1; ; attempt++) {
    try {
      return await op(attempt);
    } catch (err) {
      if (attempt >= attempts || !shouldRetry(err, attempt)) throw err;
      const wait = typeof delayMs === "function" ? delayMs(attempt) : delayMs;
      if (Date.now() + wait > deadline) throw err;
      if (wait > 0) await sleep(wait);
    }
  }
}
