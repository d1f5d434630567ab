// NATS connection options of a node, built once from its settings and used identically by the Moleculer
// transporter (moleculer.config.ts) and the JetStream KV connection (src/placement/kv.ts), so both
// authenticate the same way. Credentials inside NATS_URL are lifted into options: the nats client
// ignores them in `servers`, which silently dropped them on the KV connection.
import { readFileSync } from "node:fs";
import { connect, credsAuthenticator, nkeyAuthenticator, type ConnectionOptions, type NatsError } from "nats";
import type { Config } from "./config.ts";
import { NatsAuthorizationError } from "./errors.ts";

export interface SplitNatsUrl {
  /** The servers of NATS_URL without credentials. */
  servers: string[];
  user: string;
  pass: string;
  /** A `tls://` server asks for TLS. */
  tls: boolean;
}

/** NATS_URL (a comma list) split into servers and the credentials found in it. */
export function splitNatsUrl(natsUrl: string): SplitNatsUrl {
  const out: SplitNatsUrl = { servers: [], user: "", pass: "", tls: false };
  for (const raw of natsUrl.split(",").map((s) => s.trim())) {
    if (!raw) continue;
    const url = new URL(raw.includes("://") ? raw : `nats://${raw}`);
    out.user ||= decodeURIComponent(url.username);
    out.pass ||= decodeURIComponent(url.password);
    if (url.protocol === "tls:") out.tls = true;
    out.servers.push(`${url.protocol}//${url.host}`);
  }
  return out;
}

/** Connection options (servers, authentication, TLS) for every NATS connection of a node. */
export function natsConnectionOptions(cfg: Config): ConnectionOptions {
  const fromUrl = splitNatsUrl(cfg.natsUrl);
  const s = cfg.nats;
  const opts: ConnectionOptions = { servers: fromUrl.servers };
  const user = s.user || fromUrl.user;
  const pass = s.password || fromUrl.pass;
  // nats://TOKEN@host carries a token: the NATS convention for a user part without a password.
  const token = s.token || (fromUrl.user && !fromUrl.pass && !s.user ? fromUrl.user : "");
  if (s.credsFile) opts.authenticator = credsAuthenticator(readFileSync(s.credsFile));
  else if (s.nkeySeed) opts.authenticator = nkeyAuthenticator(new TextEncoder().encode(s.nkeySeed.trim()));
  else if (token) opts.token = token;
  else if (user) Object.assign(opts, { user, pass });
  if (s.tlsCa || s.tlsCert || s.tlsKey || fromUrl.tls) {
    opts.tls = {
      ...(s.tlsCa ? { caFile: s.tlsCa } : {}),
      ...(s.tlsCert ? { certFile: s.tlsCert } : {}),
      ...(s.tlsKey ? { keyFile: s.tlsKey } : {}),
    };
  }
  return opts;
}

/** Connects once with the node's options; NatsAuthorizationError when NATS refuses the credentials.
 * Any other connection error is left to the transporter's own retries (NATS may still be starting). */
export async function checkNatsAuthorization(cfg: Config): Promise<void> {
  const opts = natsConnectionOptions(cfg);
  let nc;
  try {
    nc = await connect({ ...opts, name: `${cfg.nodeId}/auth-check`, maxReconnectAttempts: 0, timeout: 5000 });
  } catch (err) {
    const e = err as NatsError;
    if (typeof e.isAuthError === "function" && (e.isAuthError() || e.isAuthTimeout())) {
      throw new NatsAuthorizationError(opts.servers as string[], e.message);
    }
    return;
  }
  await nc.close();
}
