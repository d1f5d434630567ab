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

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;

  /** @param perMinute requests per minute per key; 0 disables the limit. */
  constructor(
    readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {
    this.perMs = perMinute / 60000;
  }

  /** Whether `key` could make a request now, without spending a token. */
  peek(key: string): RateDecision {
    const b = this.buckets.get(key);
    if (this.perMinute <= 0 || !b) return { allowed: true, remaining: this.perMinute, retryAfterSec: 0 };
    const tokens = Math.min(this.perMinute, b.tokens + (this.now() - b.at) * this.perMs);
    if (tokens >= 1) return { allowed: true, remaining: Math.floor(tokens), retryAfterSec: 0 };
    return {
      allowed: false,
      remaining: 0,
      retryAfterSec: Math.max(1, Math.ceil((1 - tokens) / this.perMs / 1000)),
    };
  }

  take(key: string): RateDecision {
    if (this.perMinute <= 0) return { allowed: true, remaining: Infinity, retryAfterSec: 0 };
    const now = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= 100000) this.sweep(now);
      b = { tokens: this.perMinute, at: now };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.perMinute, b.tokens + (now - b.at) * this.perMs);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { allowed: true, remaining: Math.floor(b.tokens), retryAfterSec: 0 };
    }
    return {
      allowed: false,
      remaining: 0,
      retryAfterSec: Math.max(1, Math.ceil((1 - b.tokens) / this.perMs / 1000)),
    };
  }

  /** Forgets buckets that have refilled completely (they behave like new ones). */
  private sweep(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + (now - b.at) * this.perMs >= this.perMinute) this.buckets.delete(key);
    }
  }
}
