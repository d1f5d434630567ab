// The shapes every part agrees on: the account document, its public view, the broker events
// (DESIGN.md, "Events") and the params of the `accounts.*` and `session.*` actions.
import type { AccountStatus, FailureReason } from "../lifecycle/states.ts";
import type { IncomingType } from "../messages/incoming.ts";
import type { LocationInput } from "../messages/types.ts";

export type DesiredState = "running" | "stopped";

/** The current QR of a scanning account. */
export interface QrView {
  qr: string;
  /** PNG data URL of the QR image. */
  dataUrl: string;
  seq: number;
  expiresAt: number;
}

/** MongoDB `accounts` document. `_id` is the account id (`acc_` + 16 random chars). */
export interface AccountDoc {
  _id: string;
  workspaceId: string;
  /** `<engine>_<workspaceId>_<unixSeconds>_<8 random chars>`; unique; names the auth state. */
  sessionId: string;
  name: string;
  engine: string;
  desiredState: DesiredState;
  status: AccountStatus;
  reason?: FailureReason | null;
  message?: string | null;
  phoneNumber?: string | null;
  pushName?: string | null;
  /** Owner node and placement epoch of the last write; status writes filter on both (fencing). */
  node?: string | null;
  epoch?: number | null;
  /** Set by a delete once begun (its auth state is retired next): the account can only be deleted. */
  deletingAt?: Date;
  createdAt: Date;
  updatedAt: Date;
}

/** The account as REST and Socket.IO show it (DESIGN.md, "Interfaces"). */
export interface AccountView {
  id: string;
  workspaceId: string;
  sessionId: string;
  name: string;
  engine: string;
  status: AccountStatus;
  desiredState: DesiredState;
  reason?: string;
  message?: string;
  phoneNumber?: string;
  node?: string;
  createdAt: string;
  updatedAt: string;
}

/** A new account: the ids and name `accounts.create` chose, recorded by `session.create`. */
export interface NewAccount {
  workspaceId: string;
  accountId: string;
  sessionId: string;
  name: string;
  engine: string;
  /** The workspace's first account ever (its quota tally's first version): its event log is empty.
   * @default false (not known) */
  firstInWorkspace?: boolean;
}

/** The document of a new account, wanted running; `owner` is the fence it starts under, if known. */
export function newAccountDoc(
  a: NewAccount,
  now: Date,
  owner: { node: string; epoch: number } | null,
): AccountDoc {
  return {
    _id: a.accountId,
    workspaceId: a.workspaceId,
    sessionId: a.sessionId,
    name: a.name,
    engine: a.engine,
    desiredState: "running",
    status: "initializing",
    reason: null,
    message: null,
    phoneNumber: null,
    node: owner?.node ?? null,
    epoch: owner?.epoch ?? null,
    createdAt: now,
    updatedAt: now,
  };
}

export function toAccountView(doc: AccountDoc): AccountView {
  const view: AccountView = {
    id: doc._id,
    workspaceId: doc.workspaceId,
    sessionId: doc.sessionId,
    name: doc.name,
    engine: doc.engine,
    status: doc.status,
    desiredState: doc.desiredState,
    createdAt: new Date(doc.createdAt).toISOString(),
    updatedAt: new Date(doc.updatedAt).toISOString(),
  };
  if (doc.reason) view.reason = doc.reason;
  if (doc.message) view.message = doc.message;
  if (doc.phoneNumber) view.phoneNumber = doc.phoneNumber;
  if (doc.node) view.node = doc.node;
  return view;
}

// ---- broker events (always `broker.broadcast`) ----

export interface AccountStatusEvent {
  accountId: string;
  workspaceId: string;
  sessionId: string;
  status: AccountStatus;
  previousStatus: AccountStatus | null;
  reason?: string;
  message?: string;
  phoneNumber?: string;
  node: string;
  epoch: number;
  /** ISO time of the transition. */
  at: string;
}

export interface AccountQrEvent extends QrView {
  accountId: string;
  workspaceId: string;
}

export interface AccountPairingCodeEvent {
  accountId: string;
  workspaceId: string;
  code: string;
  phoneNumber: string;
}

export interface AccountMessageEvent {
  accountId: string;
  workspaceId: string;
  id: string;
  from: string;
  to?: string;
  text: string;
  timestamp: number;
}

export interface AccountCreatedEvent {
  account: AccountView;
}

export interface AccountDeletedEvent {
  accountId: string;
  workspaceId: string;
  sessionId: string;
}

export const ACCOUNT_EVENTS = [
  "account.created",
  "account.status",
  "account.qr",
  "account.pairing_code",
  "account.message",
  "account.message_ack",
  "account.deleted",
] as const;

// ---- action params ----

/** Every `accounts.*` and `session.*` call carries the workspace (the shard key). The gateway sets it
 * from the caller's key; it is never taken from a workspace-key caller's input. */
export interface WorkspaceParams {
  workspaceId: string;
}

/** An account action's params (`accounts.*` and `session.*` alike; rules in src/accounts/params.ts). */
export interface AccountParams extends WorkspaceParams {
  accountId: string;
}

export const SIMULATE_ACTIONS = ["scan", "disconnect", "logout", "message"] as const;
export type SimulateAction = (typeof SIMULATE_ACTIONS)[number];

export interface CreateAccountParams extends WorkspaceParams {
  /** @default "Account <last 4 of id>" */
  name?: string;
  /** @default configOf(broker).engine (ENGINE) */
  engine?: string;
  /** The account a create with this key recorded in the workspace is the answer to a repeat. */
  idempotencyKey?: string;
}
export interface PairingCodeParams extends AccountParams {
  phoneNumber: string;
}
export interface SendTextParams extends AccountParams {
  to: string;
  text: string;
}
export interface MessageParams extends AccountParams {
  messageId: string;
}
export interface SimulateParams extends AccountParams {
  action: SimulateAction;
  /** scan: the phone that links. @default a random number */
  phoneNumber?: string;
  /** message: the sender. */
  from?: string;
  /** message: the text (a media message's caption). */
  text?: string;
  /** message: what else it carries (src/engines/base.ts SimulatedIncoming); media in base64. */
  type?: IncomingType;
  author?: string;
  quotedId?: string;
  media?: { base64: string; mimetype: string; filename?: string };
  location?: LocationInput;
  emoji?: string;
}

/** Workspace ids: 1–64 characters of [A-Za-z0-9_-]. */
export const WORKSPACE_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** Result of session start/stop/logout/status/simulate: where the account is and in what state. */
export interface SessionStatusResult {
  accountId: string;
  status: AccountStatus;
  /** True when an engine of this account runs on `node`. */
  running: boolean;
  node: string | null;
}

/** An account as a dashboard shows it on connect: with its QR while one is on screen. */
export type AccountSnapshotItem = AccountView & { qr?: QrView };
