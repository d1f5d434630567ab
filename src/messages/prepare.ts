// The gateway side of a send (`accounts.sendMessage`): the request checked, a media URL refused early
// when it names an address the cluster must not reach, a repeat of a finished keyed send answered
// from its record, and inline bytes stored for the owner (they do not fit in a bus message).
import { UrlNotAllowedError, idempotencyKeyReused } from "../errors.ts";
import { refusedHost, type AddressPolicy } from "../net/address-guard.ts";
import type { IdempotencyRepo } from "../store/idempotency-repo.ts";
import type { OutboundMediaStore } from "../store/outbound-media.ts";
import { failureOf, resultOf } from "./results.ts";
import type { OwnerSend, SendResult } from "./types.ts";
import { checkSendRequest, requestDigest, type SendRequest } from "./validate.ts";

export interface SendMessageParams extends SendRequest {
  workspaceId: string;
  accountId: string;
  clientId?: string;
  idempotencyKey?: string;
}

export interface PrepareDeps {
  idempotency: IdempotencyRepo;
  media: OutboundMediaStore;
  policy: AddressPolicy;
  mediaMaxBytes: number;
}

/** What to do with a request: hand `owner` to the account's owner, or give `answer` at once. */
export async function prepareSend(
  p: SendMessageParams,
  deps: PrepareDeps,
): Promise<{ owner: OwnerSend } | { answer: SendResult }> {
  const { draft, media } = checkSendRequest(p, { mediaMaxBytes: deps.mediaMaxBytes });
  const key = p.idempotencyKey ?? p.clientId;
  const digest = requestDigest(draft, media);
  if (media?.kind === "url") {
    const refused = await refusedHost(new URL(media.url), deps.policy);
    if (refused) throw new UrlNotAllowedError(media.url, refused);
  }
  if (key) {
    // A repeat of a finished send is answered here, before its bytes are stored again.
    const doc = await deps.idempotency.get(p.accountId, key);
    if (doc && doc.digest !== digest) throw idempotencyKeyReused(key);
    if (doc?.state === "failed") throw failureOf(doc);
    if (doc?.state === "sent" || doc?.state === "uncertain") return { answer: resultOf(doc, true) };
  }
  const owner: OwnerSend = { workspaceId: p.workspaceId, accountId: p.accountId, draft, digest };
  if (key) owner.key = key;
  if (media?.kind === "inline") {
    const mediaId = await deps.media.put(media.data);
    owner.media = {
      kind: "stored",
      mediaId,
      mimetype: media.mimetype,
      filename: media.filename,
      size: media.data.length,
    };
  } else if (media) {
    owner.media = { kind: "url", url: media.url, mimetype: media.mimetype, filename: media.filename };
  }
  return { owner };
}
