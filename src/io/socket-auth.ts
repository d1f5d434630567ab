// Socket handshake authentication: `auth: {token}` carries a workspace key; the admin key may name a
// workspace (`auth: {token, workspaceId}`). Anything else is refused at connect with a clear message.
import { timingSafeEqual } from "node:crypto";
import { UnauthorizedError, ValidationError } from "../errors.ts";
import { WORKSPACE_ID_PATTERN } from "../accounts/types.ts";

/** What a key resolves to. */
export interface KeyPrincipal {
  workspaceId: string;
  keyId?: string;
}

/** Looks a presented workspace key up (hashed, in `api_keys`); null when unknown or revoked. */
export type KeyResolver = (token: string) => Promise<KeyPrincipal | null>;

/** Who is on the other end of a socket; saved as the socket's `meta.user`. */
export interface SocketPrincipal {
  workspaceId: string;
  keyId?: string;
  admin: boolean;
}

export const MISSING_TOKEN_MESSAGE =
  "Missing API key: connect with `io(url, { auth: { token: <workspace key> } })`";
export const INVALID_TOKEN_MESSAGE = "Invalid API key";

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Socket.IO sends only `message` and `data` of a refused handshake: put the stable shape in `data`. */
function refusal(err: UnauthorizedError | ValidationError): Error {
  (err as { data?: unknown }).data = { name: err.name, code: err.code, type: err.type, ...(err.data ?? {}) };
  return err;
}

export async function authenticateSocket(
  auth: unknown,
  opts: { resolveKey: KeyResolver; adminApiKey: string },
): Promise<SocketPrincipal> {
  const { token, workspaceId } = (auth && typeof auth === "object" ? auth : {}) as {
    token?: unknown;
    workspaceId?: unknown;
  };
  if (typeof token !== "string" || token === "") throw refusal(new UnauthorizedError(MISSING_TOKEN_MESSAGE));

  if (opts.adminApiKey && sameSecret(token, opts.adminApiKey)) {
    if (typeof workspaceId !== "string" || !WORKSPACE_ID_PATTERN.test(workspaceId)) {
      throw refusal(
        new ValidationError("The admin key must name a workspace: auth: { token, workspaceId }", {
          field: "workspaceId",
        }),
      );
    }
    return { workspaceId, admin: true };
  }

  const found = await opts.resolveKey(token);
  if (!found) throw refusal(new UnauthorizedError(INVALID_TOKEN_MESSAGE));
  return { workspaceId: String(found.workspaceId), keyId: found.keyId, admin: false };
}
