// Socket handshake authentication: `auth: {token}` carries a workspace key; the admin key may name a
// workspace (`auth: {token, workspaceId}`). Anything else is refused at connect with a clear message.
// Keys are verified by the gateway's KeyStore (src/gateway/keys.ts), the same as REST.
import type { Errors } from "moleculer";
import { RateLimitedError, UnauthorizedError, ValidationError } from "../errors.ts";
import { WORKSPACE_ID_PATTERN } from "../accounts/types.ts";
import type { Caller } from "../gateway/keys.ts";

/** Verifies a presented key (KeyStore.authenticate); null when unknown or revoked. */
export type KeyResolver = (token: string) => Promise<Caller | null>;

/** Who is on the other end of a socket; saved as the socket's `meta.user`. */
export interface SocketPrincipal {
  workspaceId: string;
  keyId: string;
  admin: boolean;
}

export const MISSING_TOKEN_MESSAGE =
  "Missing API key: connect with io(url, { auth: { token: <workspace key> } })";
export const INVALID_TOKEN_MESSAGE = "Invalid API key";
export const ADMIN_NEEDS_WORKSPACE_MESSAGE =
  "The admin key must name a workspace: io(url, { auth: { token, workspaceId } })";

/** Socket.IO sends only `message` and `data` of a refused handshake: put the stable shape in `data`. */
export function refusal(err: Errors.MoleculerError): Error {
  const data = (err.data ?? {}) as object;
  (err as { data?: unknown }).data = { name: err.name, code: err.code, type: err.type, ...data };
  return err;
}

export async function authenticateSocket(auth: unknown, resolveKey: KeyResolver): Promise<SocketPrincipal> {
  const { token, workspaceId } = (auth && typeof auth === "object" ? auth : {}) as {
    token?: unknown;
    workspaceId?: unknown;
  };
  if (typeof token !== "string" || token === "") throw refusal(new UnauthorizedError(MISSING_TOKEN_MESSAGE));

  // Too many wrong keys from the client's address: refused with data {type: RATE_LIMITED, retryAfter}.
  const caller = await resolveKey(token).catch((err: unknown) => {
    throw err instanceof RateLimitedError ? refusal(err) : err;
  });
  if (!caller) throw refusal(new UnauthorizedError(INVALID_TOKEN_MESSAGE));
  if (caller.kind === "workspace")
    return { workspaceId: caller.workspaceId, keyId: caller.keyId, admin: false };

  if (typeof workspaceId !== "string" || !WORKSPACE_ID_PATTERN.test(workspaceId)) {
    throw refusal(new ValidationError(ADMIN_NEEDS_WORKSPACE_MESSAGE, { field: "workspaceId" }));
  }
  return { workspaceId, keyId: caller.keyId, admin: true };
}
