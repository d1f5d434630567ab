// Fetching the media of a message given by URL, on the account's owner: only addresses the
// AddressPolicy allows (WEBHOOK_ALLOW_PRIVATE, as for webhooks), at most MEDIA_MAX_BYTES (an answer
// that announces or streams more is dropped), within a timeout; redirects are not followed.
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP } from "node:net";
import { ERR_MEDIA_UNAVAILABLE, MessageRejectedError, UrlNotAllowedError } from "../errors.ts";
import type { AddressPolicy } from "../net/address-guard.ts";
import { AddressNotAllowedError, agentsFor } from "../net/guarded-agents.ts";
import { tooLarge } from "./validate.ts";

export interface FetchOptions {
  policy: AddressPolicy;
  maxBytes: number;
  timeoutMs: number;
  /** Aborts the fetch before `timeoutMs` (the send's deadline); the caller tells why. @default none */
  signal?: AbortSignal;
}

export interface FetchedMedia {
  data: Buffer;
  /** The answer's Content-Type, if any. */
  mimetype?: string;
}

function unavailable(url: string, why: string): MessageRejectedError {
  return new MessageRejectedError(`media.url could not be fetched: ${why}`, ERR_MEDIA_UNAVAILABLE, {
    field: "media.url",
    url,
  });
}

export async function fetchMedia(href: string, opts: FetchOptions): Promise<FetchedMedia> {
  const url = new URL(href);
  const literal = url.hostname.replace(/^\[|\]$/g, "");
  const refused = isIP(literal) ? opts.policy.check(literal) : null;
  if (refused) throw new UrlNotAllowedError(href, refused);
  const https = url.protocol === "https:";
  const agents = agentsFor(opts.policy);
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
  try {
    return await new Promise<FetchedMedia>((resolve, reject) => {
      const req = (https ? httpsRequest : httpRequest)(
        url,
        {
          method: "GET",
          agent: https ? agents.https : agents.http,
          signal,
          headers: { "user-agent": "Switchboard/1" },
        },
        (res) => {
          const status = res.statusCode ?? 0;
          if (status < 200 || status >= 300) {
            res.resume();
            return reject(unavailable(href, `HTTP ${status}`));
          }
          const announced = Number(res.headers["content-length"]);
          if (Number.isFinite(announced) && announced > opts.maxBytes) {
            res.destroy();
            return reject(tooLarge(announced, opts.maxBytes));
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size > opts.maxBytes) {
              res.destroy();
              reject(tooLarge(null, opts.maxBytes));
            } else chunks.push(chunk);
          });
          res.once("end", () => {
            const type = res.headers["content-type"];
            resolve({ data: Buffer.concat(chunks), mimetype: type ? String(type) : undefined });
          });
          res.once("error", reject);
        },
      );
      req.once("error", reject);
      req.end();
    });
  } catch (err) {
    if (err instanceof MessageRejectedError) throw err;
    if (err instanceof AddressNotAllowedError) throw new UrlNotAllowedError(href, err.message);
    if (timeout.aborted) throw unavailable(href, `timeout after ${opts.timeoutMs} ms`);
    const e = err as Error & { code?: string };
    throw unavailable(href, e.code ?? e.message);
  }
}
