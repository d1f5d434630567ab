// Admin actions over the bus need a signature that only holders of the admin key can make (issue 16).
// Moleculer sends every call to `MOL-<ns>.REQ.<nodeID>`, so NATS permissions cannot tell one action
// from another: any node with NATS credentials could otherwise call cluster.drain or api.setQuotas.
//
// The admin key (ADMIN_API_KEY) deterministically yields an Ed25519 key pair. A node holding the admin
// key (gateways, the operator's REPL) signs each remote call of an admin action; every node verifies
// with the public half: derived from ADMIN_API_KEY, or given as ADMIN_PUBLIC_KEY to nodes that must not
// hold the admin key (workers). A signature covers the action, its params, the calling and the called
// node, the time and a nonce: it cannot be moved to another action, other params, another node or
// another caller (the answer goes to the caller), is refused once 60 s old, and a node refuses a
// nonce it has seen. Calls within one process need no signature: they never leave it.
import {
  createHmac,
  createPrivateKey,
  createPublicKey,
  randomBytes,
  sign,
  verify,
  type KeyObject,
} from "node:crypto";
import type { Context, Middleware } from "moleculer";
import { ForbiddenError } from "./errors.ts";

/** How old a signature may be (either way: clocks of nodes differ a little). */
export const SIGNATURE_MAX_AGE_MS = 60_000;
/** PKCS#8 DER header of an Ed25519 private key; the 32-byte seed follows. */
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
/** SPKI DER header of an Ed25519 public key; the 32-byte key follows. */
const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
/** Marks the meta of calls made in this process: symbols do not survive serialisation. */
const LOCAL_CALL = Symbol("switchboard.localCall");

export interface AdminKeys {
  /** Signs calls; only on nodes given ADMIN_API_KEY. */
  privateKey: KeyObject | null;
  /** Verifies calls; null when the node has neither ADMIN_API_KEY nor ADMIN_PUBLIC_KEY. */
  publicKey: KeyObject | null;
}

/** The key pair of an admin key. */
export function adminKeyPair(adminApiKey: string): { privateKey: KeyObject; publicKey: KeyObject } {
  const seed = createHmac("sha256", adminApiKey).update("switchboard admin actions v1").digest();
  const privateKey = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]),
    format: "der",
    type: "pkcs8",
  });
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

/** ADMIN_PUBLIC_KEY's form: the raw 32-byte public key in base64url. */
export function encodePublicKey(key: KeyObject): string {
  return key
    .export({ format: "der", type: "spki" })
    .subarray(ED25519_SPKI_PREFIX.length)
    .toString("base64url");
}

export function decodePublicKey(text: string): KeyObject {
  const raw = Buffer.from(text, "base64url");
  if (raw.length !== 32) throw new Error("ADMIN_PUBLIC_KEY must be 32 bytes in base64url (43 characters)");
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: "der", type: "spki" });
}

/** A node's keys from its settings; both given and not matching is a configuration error. */
export function adminKeysOf(adminApiKey: string, adminPublicKey: string): AdminKeys {
  const given = adminPublicKey ? decodePublicKey(adminPublicKey) : null;
  if (!adminApiKey) return { privateKey: null, publicKey: given };
  const pair = adminKeyPair(adminApiKey);
  if (given && encodePublicKey(given) !== encodePublicKey(pair.publicKey))
    throw new Error("ADMIN_PUBLIC_KEY is not the public key of ADMIN_API_KEY (npm run admin-public-key)");
  return pair;
}

/** A signature as it travels in `ctx.meta.adminSignature`. */
export interface AdminSignature {
  at: number;
  nonce: string;
  sig: string;
}

interface Signed {
  action: string;
  params: unknown;
  caller: string;
  target: string;
  at: number;
  nonce: string;
}

/** JSON with object keys sorted, so both ends sign the same bytes whatever the key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

export function signAdminCall(privateKey: KeyObject, s: Omit<Signed, "at" | "nonce">): AdminSignature {
  const signed: Signed = { ...s, at: Date.now(), nonce: randomBytes(12).toString("base64url") };
  const sig = sign(null, Buffer.from(canonical(signed)), privateKey).toString("base64url");
  return { at: signed.at, nonce: signed.nonce, sig };
}

/** Nonces seen in the last SIGNATURE_MAX_AGE_MS, per verifying node. */
export class NonceMemory {
  private readonly seen = new Map<string, number>();
  /** False when `nonce` was seen already; remembers it otherwise. */
  firstTime(nonce: string, now = Date.now()): boolean {
    for (const [n, at] of this.seen) {
      if (now - at <= 2 * SIGNATURE_MAX_AGE_MS) break; // insertion order: the rest is younger
      this.seen.delete(n);
    }
    if (this.seen.has(nonce)) return false;
    this.seen.set(nonce, now);
    return true;
  }
}

/** Why a signature is refused, or null when it is good. */
export function refusal(
  publicKey: KeyObject | null,
  signature: AdminSignature | undefined,
  s: Omit<Signed, "at" | "nonce">,
  nonces: NonceMemory,
): string | null {
  if (!publicKey) return "this node knows no admin public key (ADMIN_API_KEY or ADMIN_PUBLIC_KEY)";
  if (!signature || typeof signature.sig !== "string" || typeof signature.nonce !== "string")
    return "the call carries no admin signature (the caller has no ADMIN_API_KEY)";
  if (!Number.isFinite(signature.at) || Math.abs(Date.now() - signature.at) > SIGNATURE_MAX_AGE_MS)
    return "the admin signature is too old";
  const signed: Signed = { ...s, at: signature.at, nonce: signature.nonce };
  const sig = Buffer.from(signature.sig, "base64url");
  if (!verify(null, Buffer.from(canonical(signed)), publicKey, sig))
    return "the admin signature does not match this call";
  if (!nonces.firstTime(signature.nonce)) return "the admin signature was used already";
  return null;
}

/** The action a `broker.call` names: a string, or an endpoint (moleculer-web calls resolved ones). */
function nameOf(actionName: unknown): string {
  if (typeof actionName === "string") return actionName;
  return (actionName as { action?: { name?: string } } | null)?.action?.name ?? "";
}

type SignedMeta = { adminSignature?: AdminSignature; [LOCAL_CALL]?: true };

/**
 * Signs this node's remote calls of `adminActions` (when it holds the admin key) and refuses calls of
 * them from other nodes without a good signature, with 403 FORBIDDEN naming the reason.
 */
export function adminSignatureMiddleware(keys: AdminKeys, adminActions: ReadonlySet<string>): Middleware {
  const nonces = new NonceMemory();
  return {
    name: "AdminSignature",
    call(next: (...a: unknown[]) => unknown) {
      // Only calls of admin actions are marked: every other call goes through untouched (the hot path).
      return (actionName: unknown, params: unknown, opts: { meta?: SignedMeta } = {}) =>
        adminActions.has(nameOf(actionName))
          ? next(actionName, params, { ...opts, meta: { ...opts.meta, [LOCAL_CALL]: true } })
          : next(actionName, params, opts);
    },
    remoteAction(next: (ctx: Context) => Promise<unknown>, action: { name: string }) {
      if (!adminActions.has(action.name)) return next;
      return (ctx: Context) => {
        if (keys.privateKey) {
          const meta = ctx.meta as SignedMeta;
          meta.adminSignature = signAdminCall(keys.privateKey, {
            action: action.name,
            params: ctx.params,
            caller: ctx.broker.nodeID,
            target: ctx.nodeID ?? "",
          });
        }
        return next(ctx);
      };
    },
    localAction(next: (ctx: Context) => Promise<unknown>, action: { name: string }) {
      if (!adminActions.has(action.name)) return next;
      return (ctx: Context) => {
        const meta = ctx.meta as SignedMeta;
        if (meta[LOCAL_CALL]) return next(ctx);
        const why = refusal(
          keys.publicKey,
          meta.adminSignature,
          { action: action.name, params: ctx.params, caller: ctx.nodeID ?? "", target: ctx.broker.nodeID },
          nonces,
        );
        if (why) return Promise.reject(new ForbiddenError(`${action.name} is an admin action: ${why}`));
        return next(ctx);
      };
    },
  } as unknown as Middleware;
}
