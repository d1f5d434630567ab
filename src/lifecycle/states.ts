// The account lifecycle: the one transition table of DESIGN.md ("Account lifecycle").
// Every status change goes through `assertTransition`; an illegal one is a bug and throws.
import { IllegalTransitionError } from "../errors.ts";

export const STATUSES = [
  "initializing",
  "qr_scanning",
  "authenticated",
  "connected",
  "disconnected",
  "failed",
  "logged_out",
  "stopped",
] as const;
export type AccountStatus = (typeof STATUSES)[number];

/** Machine-readable reasons carried by `failed` (and by transient `disconnected`). */
export const FAILURE_REASONS = [
  "whatsapp_unreachable",
  "browser_launch_failed",
  "browser_crashed",
  "startup_timeout",
  "qr_timeout",
  "auth_failure",
  "node_lost",
  "capacity_exhausted",
  "engine_error",
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

/**
 * `initializing` is reachable from every state: it is an engine (re)starting, on this node or, after a
 * failover or hand-off, on another. The other edges are the engine's own progress.
 */
const TRANSITIONS: Record<AccountStatus, readonly AccountStatus[]> = {
  initializing: [
    "qr_scanning",
    "authenticated",
    "connected",
    "disconnected",
    "failed",
    "logged_out",
    "stopped",
  ],
  qr_scanning: [
    "initializing",
    "authenticated",
    "connected",
    "disconnected",
    "failed",
    "logged_out",
    "stopped",
  ],
  authenticated: ["initializing", "connected", "disconnected", "failed", "logged_out", "stopped"],
  connected: ["initializing", "disconnected", "failed", "logged_out", "stopped"],
  disconnected: [
    "initializing",
    "qr_scanning",
    "authenticated",
    "connected",
    "failed",
    "logged_out",
    "stopped",
  ],
  // A logout of an account no engine runs unlinks it whatever it shows (its saved state deleted).
  failed: ["initializing", "logged_out", "stopped"],
  logged_out: ["initializing", "stopped"],
  stopped: ["initializing", "logged_out"],
};

/** States in which an engine is (or should be) running. */
export const LIVE_STATUSES: readonly AccountStatus[] = [
  "initializing",
  "qr_scanning",
  "authenticated",
  "connected",
  "disconnected",
];

/** Ends after which the engine is gone: only a new start brings the account back. */
export const TERMINAL: ReadonlySet<AccountStatus> = new Set(["failed", "logged_out", "stopped"]);

/** Failures no retry can fix (a person must rescan): such an account stops wanting to run. */
export const NEEDS_PERSON: ReadonlySet<FailureReason> = new Set(["qr_timeout", "auth_failure"]);

/** Failures time may fix (the network, a browser): the owner starts such an account again, with backoff. */
export const RETRYABLE: ReadonlySet<FailureReason> = new Set([
  "whatsapp_unreachable",
  "browser_launch_failed",
  "browser_crashed",
  "startup_timeout",
  "capacity_exhausted",
]);

/** Claimed by an owner that has not run it yet: `initializing`, or `disconnected` with `node_lost` (a
 * restore after its node was lost, shown as such until the session is back). */
export function awaitsStart(doc: { status: AccountStatus; reason?: FailureReason | null }): boolean {
  return doc.status === "initializing" || (doc.status === "disconnected" && doc.reason === "node_lost");
}

export function isStatus(value: unknown): value is AccountStatus {
  return typeof value === "string" && (STATUSES as readonly string[]).includes(value);
}

export function isFailureReason(value: unknown): value is FailureReason {
  return typeof value === "string" && (FAILURE_REASONS as readonly string[]).includes(value);
}

export function canTransition(from: AccountStatus, to: AccountStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

export function assertTransition(from: AccountStatus, to: AccountStatus): void {
  if (!canTransition(from, to)) throw new IllegalTransitionError(from, to);
}

export function allowedFrom(from: AccountStatus): readonly AccountStatus[] {
  return TRANSITIONS[from];
}
