// Webhook signatures: `X-Switchboard-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
// The timestamp (unix seconds, also sent as `X-Switchboard-Timestamp`) is inside the MAC so a receiver
// can refuse replays older than its tolerance.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export const SIGNATURE_PREFIX = "sha256=";

/** A new endpoint secret: `whsec_` + 32 random bytes, base64url. */
export function generateSecret(): string {
  return `whsec_${randomBytes(32).toString("base64url")}`;
}

/** The value of the `X-Switchboard-Signature` header for `body` sent at `timestamp` (unix seconds). */
export function sign(secret: string, timestamp: number | string, body: string): string {
  const mac = createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
  return `${SIGNATURE_PREFIX}${mac}`;
}

export interface VerifyOptions {
  /** Largest accepted age of the timestamp in seconds; 0 disables the check. @default 300 */
  toleranceSec?: number;
  /** Current time in ms (tests). @default Date.now() */
  now?: number;
}

/** What a receiver does: recompute the MAC over the raw body and compare in constant time. */
export function verify(
  secret: string,
  timestamp: string,
  body: string,
  signature: string,
  opts: VerifyOptions = {},
): boolean {
  const { toleranceSec = 300, now = Date.now() } = opts;
  const ts = Number(timestamp);
  if (!Number.isFinite(ts)) return false;
  if (toleranceSec > 0 && Math.abs(now / 1000 - ts) > toleranceSec) return false;
  const expected = Buffer.from(sign(secret, timestamp, body));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
