// Typed calls of the `accounts.*` and `session.*` actions: each action's params and result are named
// here once, so a caller cannot pass the wrong params or misread the answer of a string action name.
import type { CallingOptions } from "moleculer";
import type { ChatActions } from "./chat-params.ts";
import type { SendMessageParams } from "../messages/prepare.ts";
import type { OwnerSend, SendResult } from "../messages/types.ts";
import type { MessageStatusView } from "../store/message-status-repo.ts";
import type {
  AccountParams,
  AccountSnapshotItem,
  AccountView,
  CreateAccountParams,
  MessageParams,
  NewAccount,
  PairingCodeParams,
  QrView,
  SendTextParams,
  SessionStatusResult,
  SimulateParams,
  WorkspaceParams,
} from "./types.ts";

/** A broker or a context: both make calls. */
export interface Caller {
  call<T, P>(action: string, params: P, opts?: CallingOptions): Promise<T>;
}

/** `accounts.*`: [params, result]. */
export interface AccountsActions extends Signatures, ChatActions {
  create: [CreateAccountParams, AccountView];
  list: [
    WorkspaceParams & { limit?: string; cursor?: string },
    { items: AccountView[]; nextCursor: string | null },
  ];
  get: [AccountParams, AccountView];
  /** Across workspaces: the operator's console only. */
  lookup: [{ accountId: string }, AccountView];
  qr: [AccountParams, QrView];
  pairingCode: [PairingCodeParams, { code: string }];
  restart: [AccountParams, AccountView];
  logout: [AccountParams, AccountView];
  remove: [AccountParams, { id: string; deleted: true }];
  sendText: [SendTextParams, SendResult];
  sendMessage: [SendMessageParams, SendResult];
  message: [MessageParams, MessageStatusView];
  simulate: [SimulateParams, AccountView];
  snapshot: [WorkspaceParams, { items: AccountSnapshotItem[] }];
}

/** `session.*` (the account actions; the owner runs them): [params, result]. */
export interface SessionActions extends Signatures, ChatActions {
  create: [NewAccount, AccountView];
  start: [AccountParams, SessionStatusResult];
  stop: [AccountParams, SessionStatusResult];
  logout: [AccountParams, SessionStatusResult];
  status: [AccountParams, SessionStatusResult];
  qr: [AccountParams, QrView];
  qrs: [WorkspaceParams, { items: { accountId: string; qr: QrView }[] }];
  pairingCode: [PairingCodeParams, { code: string }];
  sendText: [SendTextParams, { id: string }];
  sendMessage: [OwnerSend, SendResult];
  simulate: [SimulateParams, SessionStatusResult];
}

type Signatures = { [action: string]: [unknown, unknown] };

/** A typed caller of one service's actions. */
function callerOf<Actions extends Signatures>(service: string) {
  return <A extends keyof Actions & string>(
    caller: Caller,
    action: A,
    params: Actions[A][0],
    opts?: CallingOptions,
  ): Promise<Actions[A][1]> => caller.call(`${service}.${action}`, params, opts);
}

export const callAccounts = callerOf<AccountsActions>("accounts");
export const callSession = callerOf<SessionActions>("session");
