// One delivery attempt: a signed JSON POST with a timeout. Any non-2xx answer, a timeout or a network
// error is a failure the caller retries; redirects are not followed (a 3xx is a failure too).
import { sign } from "./signing.ts";
import type { OutboxDoc } from "./types.ts";

export const HEADER_EVENT = "X-Switchboard-Event";
export const HEADER_EVENT_ID = "X-Switchboard-Event-Id";
export const HEADER_ATTEMPT = "X-Switchboard-Delivery-Attempt";
export const HEADER_TIMESTAMP = "X-Switchboard-Timestamp";
export const HEADER_SIGNATURE = "X-Switchboard-Signature";

/** The JSON body a receiver gets. */
export interface WebhookBody {
  id: string;
  event: string;
  workspaceId: string;
  accountId: string;
  /** Position of the event in the queue of (endpoint, account). */
  sequence: number;
  createdAt: string;
  data: unknown;
}

export type AttemptResult =
  | { ok: true; statusCode: number }
  | { ok: false; statusCode: number | null; error: string; aborted?: boolean };

export function bodyOf(row: OutboxDoc): string {
  const body: WebhookBody = {
    id: row.eventId,
    event: row.event,
    workspaceId: row.workspaceId,
    accountId: row.accountId,
    sequence: row.seq,
    createdAt: new Date(row.createdAt).toISOString(),
    data: row.payload,
  };
  return JSON.stringify(body);
}

export interface AttemptOptions {
  url: string;
  secret: string;
  attempt: number;
  timeoutMs: number;
  /** Aborts the request when the node stops (the row stays pending, the attempt is not counted). */
  signal?: AbortSignal;
}

export async function attemptDelivery(row: OutboxDoc, opts: AttemptOptions): Promise<AttemptResult> {
  const body = bodyOf(row);
  const timestamp = Math.floor(Date.now() / 1000);
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
  try {
    const res = await fetch(opts.url, {
      method: "POST",
      redirect: "manual",
      signal,
      headers: {
        "content-type": "application/json",
        "user-agent": "Switchboard-Webhooks/1",
        [HEADER_EVENT]: row.event,
        [HEADER_EVENT_ID]: row.eventId,
        [HEADER_ATTEMPT]: String(opts.attempt),
        [HEADER_TIMESTAMP]: String(timestamp),
        [HEADER_SIGNATURE]: sign(opts.secret, timestamp, body),
      },
      body,
    });
    const text = await res.text().catch(() => "");
    if (res.status >= 200 && res.status < 300) return { ok: true, statusCode: res.status };
    return {
      ok: false,
      statusCode: res.status,
      error: `HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ""}`,
    };
  } catch (err) {
    if (opts.signal?.aborted) return { ok: false, statusCode: null, error: "aborted", aborted: true };
    if (timeout.aborted) return { ok: false, statusCode: null, error: `timeout after ${opts.timeoutMs} ms` };
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const detail = e.cause?.code ?? e.cause?.message ?? e.message;
    return { ok: false, statusCode: null, error: `request failed: ${detail}` };
  }
}
