// Per-key rate limit of the gateway: a token bucket per key id (capacity = the per-minute limit,
// refilled continuously). Kept in memory per gateway process, so with N gateways a key may make up to
// N × the limit; the limit protects workers from a runaway client, it is not a billing meter.

export interface RateDecision {
  allowed: boolean;
  /** Whole tokens left after this request. */
  remaining: number;
  /** Seconds until one request is allowed again (0 when allowed). */
  retryAfterSec: number;
}

/** Buckets kept before the full ones are forgotten (a full bucket behaves like a new one). */
const SWEEP_AT = 100_000;

interface Bucket {
  tokens: number;
  at: number;
  /** The limit the bucket last refilled at (a key's limit may change: `take`'s `perMinute`). */
  perMinute: number;
}

/** Tokens in `b` at `now`: refilled at its limit's rate since it was last touched (not capped). */
function storedAt(b: Bucket, now: number): number {
  return b.tokens + (now - b.at) * (b.perMinute / 60000);
}

/** The answer for a key short of a whole token (`tokens` left, refilled at `perMinute`). */
function refused(tokens: number, perMinute: number): RateDecision {
  return {
    allowed: false,
    remaining: 0,
    retryAfterSec: Math.max(1, Math.ceil((1 - tokens) / (perMinute / 60000) / 1000)),
  };
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  /** Requests under way per key whose cost is not known yet (`hold`): `peek` counts them as spent. */
  private readonly held = new Map<string, number>();
  /** Per key, who waits for a held request to settle (`settled`). */
  private readonly waiting = new Map<string, (() => void)[]>();

  /** @param perMinute requests per minute per key; 0 disables the limit. */
  constructor(
    readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether `key` could make a request now, without spending a token (requests held count as spent). */
  peek(key: string): RateDecision {
    const b = this.buckets.get(key);
    const held = this.held.get(key) ?? 0;
    if (this.perMinute <= 0 || (!b && held === 0))
      return { allowed: true, remaining: this.perMinute, retryAfterSec: 0 };
    const stored = b ? storedAt(b, this.now()) : this.perMinute;
    const tokens = Math.min(this.perMinute, stored) - held;
    if (tokens >= 1) return { allowed: true, remaining: Math.floor(tokens), retryAfterSec: 0 };
    return refused(tokens, this.perMinute);
  }

  /**
   * Holds a token's place for a request under way whose cost is known only at its end (a key lookup
   * spends a token when the key is wrong): until `settle`, `peek` counts it as spent, so requests made
   * at once cannot all pass a `peek` that only one token allows. `settle(true)` spends the token.
   */
  hold(key: string): (spend: boolean) => void {
    if (this.perMinute <= 0) return () => undefined;
    this.held.set(key, (this.held.get(key) ?? 0) + 1);
    let settled = false;
    return (spend) => {
      if (settled) return;
      settled = true;
      const n = (this.held.get(key) ?? 1) - 1;
      if (n > 0) this.held.set(key, n);
      else this.held.delete(key);
      if (spend) this.take(key);
      const waiters = this.waiting.get(key) ?? [];
      this.waiting.delete(key);
      for (const wake of waiters) wake();
    };
  }

  /** Whether `key` has requests held. */
  isHeld(key: string): boolean {
    return this.held.has(key);
  }

  /** Resolves when one of `key`'s held requests settles (at once when none is held). */
  settled(key: string): Promise<void> {
    if (!this.held.has(key)) return Promise.resolve();
    return new Promise((resolve) => {
      const waiters = this.waiting.get(key) ?? [];
      waiters.push(resolve);
      this.waiting.set(key, waiters);
    });
  }

  /**
   * Spends one of `key`'s tokens if it has one. `perMinute` is the key's own limit when keys differ (a
   * workspace's quota): a changed limit keeps what was spent, capped at the new limit, and refills at
   * the new rate from then on; 0 disables the limit for the key.
   */
  take(key: string, perMinute = this.perMinute): RateDecision {
    if (perMinute <= 0) {
      this.buckets.delete(key);
      return { allowed: true, remaining: Infinity, retryAfterSec: 0 };
    }
    const now = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= SWEEP_AT) this.sweep(now);
      b = { tokens: perMinute, at: now, perMinute };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(perMinute, storedAt(b, now));
      b.at = now;
      b.perMinute = perMinute;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { allowed: true, remaining: Math.floor(b.tokens), retryAfterSec: 0 };
    }
    return refused(b.tokens, perMinute);
  }

  /** Keys with a bucket kept (full buckets are forgotten once SWEEP_AT keys were seen). */
  get size(): number {
    return this.buckets.size;
  }

  /** Forgets buckets that have refilled completely (they behave like new ones). */
  private sweep(now: number): void {
    for (const [key, b] of this.buckets) {
      if (storedAt(b, now) >= b.perMinute) this.buckets.delete(key);
    }
  }
}
