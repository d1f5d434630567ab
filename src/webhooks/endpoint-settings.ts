// The settings of the endpoints a delivering node holds (url, secret, enabled), read through a cache,
// and the endpoints whose settings cannot be read (the database failed, or the secret was sealed under
// a key this node no longer has): their queues wait, backing off, while every other endpoint's go on;
// the failure is logged once per endpoint per `LOG_EVERY_MS`, not at every tick.
import type { Logger } from "moleculer";
import { backoffDelay, type BackoffOptions } from "./backoff.ts";
import { TtlCache } from "../ttl-cache.ts";
import type { EndpointDoc } from "./types.ts";

/** An endpoint whose settings keep failing to be read is logged again after this long. */
const LOG_EVERY_MS = 60_000;

export interface EndpointSettingsOptions {
  /** How long settings read are reused (a change made on another node shows within it). */
  maxAgeMs: number;
  /** Least wait after a failed read. */
  minRetryMs: number;
  /** Wait after failed reads in a row (the delivery back-off). */
  backoff: BackoffOptions;
}

export class EndpointSettings {
  /** By endpoint id (null: removed). */
  private readonly cache: TtlCache<string, EndpointDoc | null>;
  /** Endpoints whose last read failed: failures in a row, when to read again, when last logged. */
  private readonly failing = new Map<string, { failures: number; retryAt: number; loggedAt: number }>();

  constructor(
    private readonly load: (endpointId: string) => Promise<EndpointDoc | null>,
    private readonly opts: EndpointSettingsOptions,
    private readonly logger: Pick<Logger, "warn">,
  ) {
    this.cache = new TtlCache(opts.maxAgeMs);
  }

  /** When the endpoint's settings may be read again after a failure (0: now). */
  retryAt(endpointId: string): number {
    return this.failing.get(endpointId)?.retryAt ?? 0;
  }

  /** The endpoint's settings (null: removed); throws what the read threw. */
  get(endpointId: string): Promise<EndpointDoc | null> {
    return this.cache.get(endpointId, this.load);
  }

  /** The endpoint's settings were read and acted on: its failures are over. */
  succeeded(endpointId: string): void {
    this.failing.delete(endpointId);
  }

  /** Reading (or acting on) the endpoint's settings failed: answers when to try again, and logs it
   * unless it did so lately for this endpoint. */
  failed(endpointId: string, err: Error): number {
    const now = Date.now();
    const seen = this.failing.get(endpointId) ?? { failures: 0, retryAt: 0, loggedAt: -Infinity };
    seen.failures++;
    seen.retryAt = now + Math.max(this.opts.minRetryMs, backoffDelay(seen.failures, this.opts.backoff));
    if (now - seen.loggedAt >= LOG_EVERY_MS) {
      seen.loggedAt = now;
      this.logger.warn(
        `webhooks: endpoint ${endpointId}: reading its settings failed (${seen.failures} in a row), its queues wait: ${err.message}`,
      );
    }
    this.failing.set(endpointId, seen);
    return seen.retryAt;
  }

  /** Reads the endpoint's settings again next time (changed or removed). */
  forget(endpointId: string): void {
    this.cache.forget(endpointId);
  }

  /** The node no longer delivers the endpoint: its failures are forgotten too. */
  dropped(endpointId: string): void {
    this.failing.delete(endpointId);
  }
}
