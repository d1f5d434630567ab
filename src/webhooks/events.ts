// Which account events webhooks carry, how an endpoint's filter matches them, and the deterministic
// event id: every webhooks node receives every broadcast, so the id must be the same on all of them
// (it is the outbox's idempotency key and the receiver's deduplication key).
import { createHash } from "node:crypto";
import { ACCOUNT_EVENTS } from "../accounts/types.ts";

export type AccountEventName = (typeof ACCOUNT_EVENTS)[number];
export const WEBHOOK_EVENTS: readonly string[] = ACCOUNT_EVENTS;

export function isWebhookEvent(name: string): name is AccountEventName {
  return WEBHOOK_EVENTS.includes(name);
}

/** An endpoint's filter: a list of event names, or `["*"]` for all. */
export function filterMatches(filter: readonly string[], event: string): boolean {
  return filter.includes("*") || filter.includes(event);
}

/** JSON with object keys sorted, so equal payloads serialise identically on every node, and whichever
 * way an event came: over the bus (JSON: dates as strings, undefined fields gone) or read back from the
 * event log (BSON: dates as dates, undefined fields stored as null). So a field that is null or
 * undefined is left out, and a date is its ISO string. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object" || value instanceof Date)
    return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined && obj[k] !== null)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
}

/** `evt_` + a hash of the event name and its whole payload. Status events carry `node`, `epoch` and
 * `at`, QR events `seq`/`expiresAt`, messages their id: two distinct events never hash alike, and the
 * same broadcast hashes alike on every node. */
export function eventIdOf(event: string, payload: unknown): string {
  const digest = createHash("sha256").update(event).update("\n").update(canonicalJson(payload)).digest("hex");
  return `evt_${digest.slice(0, 32)}`;
}

/** The account and workspace an event is about (`account.created` nests them in `account`). */
export function subjectOf(payload: unknown): { workspaceId: string; accountId: string } | null {
  type Subject = { workspaceId?: unknown; accountId?: unknown; id?: unknown; account?: Subject } | undefined;
  const p = (payload && typeof payload === "object" ? payload : undefined) as Subject;
  const src = p?.account ?? p;
  const workspaceId = src?.workspaceId;
  const accountId = src?.accountId ?? src?.id;
  if (typeof workspaceId !== "string" || typeof accountId !== "string") return null;
  return { workspaceId, accountId };
}
