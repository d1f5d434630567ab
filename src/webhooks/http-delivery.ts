// One delivery attempt: a signed JSON POST with a timeout. A 2xx status is a success as soon as it
// arrives (the body is not waited for); any other answer, a timeout before the status or a network
// error is a failure the caller retries; redirects are not followed (a 3xx is a failure too). Only
// addresses the AddressPolicy allows are connected to, and at most 4 KB of an answer is read.
import type { Agent as HttpAgent, IncomingMessage } from "node:http";
import { request as httpRequest } from "node:http";
import type { Agent as HttpsAgent } from "node:https";
import { request as httpsRequest } from "node:https";
import { isIP } from "node:net";
import { AddressPolicy } from "../net/address-guard.ts";
import { AddressNotAllowedError, agentsFor } from "../net/guarded-agents.ts";
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
  /** Which addresses may be connected to (by default: public ones only). */
  policy?: AddressPolicy;
  /** Aborts the request when the node stops (the row stays pending, the attempt is not counted). */
  signal?: AbortSignal;
}

/** At most this much of a receiver's answer is read and kept (in the delivery's error). */
export const RESPONSE_BODY_LIMIT = 4096;

const PUBLIC_ONLY = new AddressPolicy();

export async function attemptDelivery(row: OutboxDoc, opts: AttemptOptions): Promise<AttemptResult> {
  const body = bodyOf(row);
  const timestamp = Math.floor(Date.now() / 1000);
  // One controller, stopped by the timeout or the node's signal, both let go of when the attempt ends
  // (AbortSignal.timeout's timer cannot be cleared: every attempt left one behind for `timeoutMs`).
  const abort = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.abort();
  }, opts.timeoutMs).unref();
  const stop = () => abort.abort();
  if (opts.signal?.aborted) stop();
  else opts.signal?.addEventListener("abort", stop, { once: true });
  const signal = abort.signal;
  const policy = opts.policy ?? PUBLIC_ONLY;
  try {
    const url = new URL(opts.url);
    // A literal IP is connected to without a lookup: checked here.
    const literal = url.hostname.replace(/^\[|\]$/g, "");
    const refused = isIP(literal) ? policy.check(literal) : null;
    if (refused) return { ok: false, statusCode: null, error: `address not allowed: ${refused}` };
    const headers = {
      "content-type": "application/json",
      "content-length": String(Buffer.byteLength(body)),
      "user-agent": "Switchboard-Webhooks/1",
      [HEADER_EVENT]: row.event,
      [HEADER_EVENT_ID]: row.eventId,
      [HEADER_ATTEMPT]: String(opts.attempt),
      [HEADER_TIMESTAMP]: String(timestamp),
      [HEADER_SIGNATURE]: sign(opts.secret, timestamp, body),
    };
    const drain = { withinMs: opts.timeoutMs, signal: opts.signal };
    const { status, text } = await post(url, headers, body, agentsFor(policy), signal, drain);
    if (status >= 200 && status < 300) return { ok: true, statusCode: status };
    return { ok: false, statusCode: status, error: `HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ""}` };
  } catch (err) {
    if (opts.signal?.aborted) return { ok: false, statusCode: null, error: "aborted", aborted: true };
    if (timedOut) return { ok: false, statusCode: null, error: `timeout after ${opts.timeoutMs} ms` };
    if (err instanceof AddressNotAllowedError)
      return { ok: false, statusCode: null, error: `address not allowed: ${err.message}` };
    const e = err as Error & { code?: string };
    return { ok: false, statusCode: null, error: `request failed: ${e.code ?? e.message}` };
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener("abort", stop);
  }
}

/** POSTs `body`; resolves with the status and, for an answer other than 2xx, at most
 * RESPONSE_BODY_LIMIT bytes of its body (the rest is not read: the connection is dropped). A 2xx is
 * answered as soon as its status is in: the receiver accepted the event, however slowly its body comes
 * (its body is read and thrown away, within `drain.withinMs` and the same limit, so the connection can
 * serve the next request; past either, or when `drain.signal` aborts, it is dropped). Redirects are
 * not followed. */
function post(
  url: URL,
  headers: Record<string, string>,
  body: string,
  agents: { http: HttpAgent; https: HttpsAgent },
  signal: AbortSignal,
  drain: Drain,
): Promise<{ status: number; text: string }> {
  const https = url.protocol === "https:";
  const send = https ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      { method: "POST", headers, agent: https ? agents.https : agents.http, signal },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          resolve({ status, text: "" });
          discard(res, drain);
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        const finish = () => {
          resolve({ status, text: Buffer.concat(chunks).toString("utf8", 0, RESPONSE_BODY_LIMIT) });
        };
        res.on("data", (chunk: Buffer) => {
          chunks.push(chunk);
          size += chunk.length;
          if (size >= RESPONSE_BODY_LIMIT) {
            res.removeAllListeners("data");
            res.destroy();
            finish();
          }
        });
        res.once("end", finish);
        res.once("error", reject);
      },
    );
    req.once("error", reject);
    req.end(body);
  });
}

/** How long an accepted answer's body is read at most, and what stops that sooner (the node's stop). */
interface Drain {
  withinMs: number;
  signal?: AbortSignal;
}

/** Reads an answer's body to its end and throws it away; drops the connection past RESPONSE_BODY_LIMIT
 * bytes, `withinMs` or the signal. */
function discard(res: IncomingMessage, { withinMs, signal }: Drain): void {
  let size = 0;
  const drop = () => res.destroy();
  const timer = setTimeout(drop, withinMs).unref();
  if (signal?.aborted) drop();
  else signal?.addEventListener("abort", drop, { once: true });
  res.once("close", () => {
    clearTimeout(timer);
    signal?.removeEventListener("abort", drop);
  });
  res.on("error", () => undefined); // the answer was taken already; a reset after it changes nothing
  res.on("data", (chunk: Buffer) => {
    size += chunk.length;
    if (size > RESPONSE_BODY_LIMIT) res.destroy();
  });
}
