// Socket calls: `socket.emit("call", "accounts.<action>", params, cb)`. Only whitelisted `accounts.*`
// actions, and always with the socket's own workspace (a socket can never choose another one).
import type { Logger } from "moleculer";
import { ForbiddenError, ValidationError } from "../errors.ts";
import { callError } from "../gateway/http-errors.ts";

export const SOCKET_CALLABLE_ACTIONS = [
  "accounts.list",
  "accounts.get",
  "accounts.create",
  "accounts.qr",
  "accounts.restart",
  "accounts.logout",
  "accounts.remove",
  "accounts.pairingCode",
  "accounts.sendText",
  "accounts.sendMessage",
  "accounts.message",
  "accounts.simulate",
  "accounts.snapshot",
] as const;

export interface SocketCall {
  action: string;
  params: Record<string, unknown> & { workspaceId: string };
}

/** Validates a socket call and forces its workspace; throws a client error otherwise. */
export function prepareSocketCall(action: unknown, params: unknown, workspaceId: string): SocketCall {
  if (typeof action !== "string" || !(SOCKET_CALLABLE_ACTIONS as readonly string[]).includes(action)) {
    throw new ForbiddenError(
      `'${String(action)}' cannot be called over Socket.IO (allowed: ${SOCKET_CALLABLE_ACTIONS.join(", ")})`,
    );
  }
  if (params != null && (typeof params !== "object" || Array.isArray(params))) {
    throw new ValidationError("Call params must be an object", { action });
  }
  const given = { ...(params as Record<string, unknown> | null) };
  // Sockets written before the account id was `accountId` everywhere still send `id`.
  if (given.accountId === undefined && given.id !== undefined) {
    given.accountId = given.id;
    delete given.id;
  }
  return { action, params: { ...given, workspaceId } };
}

/** A refused handshake's error: Socket.IO sends only `message` and `data` of it, so the contract's
 * shape goes in `data` (a refusal built as one keeps its own). */
export function handshakeError(err: unknown, logger: Logger): Error {
  const data = (err as { data?: { type?: unknown } } | null)?.data;
  if (err instanceof Error && typeof data?.type === "string") return err;
  const shape = callError(err, logger);
  return Object.assign(new Error(shape.message), { data: shape });
}
