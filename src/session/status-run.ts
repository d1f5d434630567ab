// Folding the queued status changes of one account into one fenced write. Engines often report
// several changes at once (a restore: `authenticated` then `connected`); one write for the run spares
// a database round trip per change. Its events are then broadcast one by one, in order.
//
// QR codes are not written: a QR is short-lived and only the owner's runtime can show it, so a fenced
// write per refresh of every scanning account would load the database for nothing. The status
// `qr_scanning` is written once, after the first QR is shown (SessionPipeline.applyRun in
// pipeline.ts); refreshes are broadcast only, while the in-memory fence holds, and late readers ask
// the owner (`session.qr`, `session.qrs`).
import { assertTransition, NEEDS_PERSON, TERMINAL, type AccountStatus } from "../lifecycle/states.ts";
import type { StatusPatch } from "../store/accounts-repo.ts";
import type { SessionChange } from "./engine-events.ts";

export type StatusChange = Extract<SessionChange, { kind: "status" }>;

/** A change waiting in an account's pipeline. */
export interface QueuedChange {
  change: SessionChange;
  /** Applied even after the session closed (the final `stopped` of a stop). */
  force: boolean;
  /** When the change happened: the event's `at`. */
  at: Date;
  /** Already in the database (written by the claim that started the session): broadcast only. */
  written: boolean;
}

/** One status change of a run, as it will be broadcast. */
export interface StatusStep {
  change: StatusChange;
  previous: AccountStatus;
  /** Same status again with a new QR: only the QR is news (and nothing is written). */
  refresh: boolean;
  at: Date;
  /** What this change alone would write (nothing for a refresh). */
  patch: Partial<StatusPatch>;
}

export interface StatusRun {
  steps: StatusStep[];
  /** The steps' patches merged in order: the one write of the run. */
  patch: Partial<StatusPatch>;
  /** False when every step is already in the database, or only shows a new QR. */
  needsWrite: boolean;
  /** How many queued changes the run used (steps, and repeats that were news to no one). */
  consumed: number;
  /** The run ends the engine (failed, logged out, stopped). */
  terminal: boolean;
  /** Every step is the QR screen (`qr_scanning`, first QR or refreshes): shown ahead of its write. */
  showsQr: boolean;
}

/**
 * The longest run of status changes at the head of `queued`, starting from `status`: it ends before a
 * change that is not a status, after a terminal status, or before an illegal transition. An illegal
 * first change throws (IllegalTransitionError): the caller drops it.
 */
export function foldStatusRun(status: AccountStatus, queued: readonly QueuedChange[]): StatusRun {
  const steps: StatusStep[] = [];
  let current = status;
  let consumed = 0;
  let terminal = false;
  let needsWrite = false;
  for (const item of queued) {
    if (item.change.kind !== "status" || terminal) break;
    const change = item.change;
    const refresh = change.status === current;
    if (!refresh) {
      try {
        assertTransition(current, change.status);
      } catch (err) {
        if (consumed === 0) throw err;
        break;
      }
    }
    consumed += 1;
    // Same status again: a refreshed QR is news; anything else (disconnected → disconnected) is not.
    if (refresh && !change.qr) continue;
    steps.push({ change, previous: current, refresh, at: item.at, patch: patchOf(change, refresh, item.at) });
    current = change.status;
    terminal = !refresh && TERMINAL.has(change.status);
    // A QR refresh writes nothing; a change the claim already wrote needs no second write.
    if (!refresh && !item.written) needsWrite = true;
  }
  const patch = Object.assign({}, ...steps.map((s) => s.patch)) as Partial<StatusPatch>;
  return {
    steps,
    patch,
    needsWrite,
    consumed,
    terminal,
    showsQr: steps.length > 0 && steps.every((s) => s.change.status === "qr_scanning"),
  };
}

function patchOf(change: StatusChange, refresh: boolean, at: Date): Partial<StatusPatch> {
  if (refresh) return {};
  const patch: StatusPatch = {
    updatedAt: at,
    status: change.status,
    reason: change.reason ?? null,
    message: change.message ?? null,
  };
  if (change.phoneNumber)
    Object.assign(patch, { phoneNumber: change.phoneNumber, pushName: change.pushName ?? null });
  if (change.status === "logged_out") Object.assign(patch, { phoneNumber: null, pushName: null });
  if (
    change.status === "logged_out" ||
    (change.status === "failed" && change.reason !== undefined && NEEDS_PERSON.has(change.reason))
  ) {
    patch.desiredState = "stopped";
  }
  return patch;
}

/** The fields a claim sets when it starts a session: `initializing`, nothing left of the last run. */
export function initializingPatch(at: Date): StatusPatch {
  return patchOf({ kind: "status", status: "initializing" }, false, at) as StatusPatch;
}
