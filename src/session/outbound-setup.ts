// The pieces a worker's messages need, built once per `session` service: the repositories, the media
// fetcher with the webhooks' network guard, the sender, the store of received media, and the pruning
// of what expires.
import type { Db } from "mongodb";
import type { Config } from "../config.ts";
import { fetchMedia } from "../messages/media-fetch.ts";
import type { OutboundMessage } from "../messages/types.ts";
import { AddressPolicy } from "../net/address-guard.ts";
import type { Fence } from "../placement/fence.ts";
import { IdempotencyRepo } from "../store/idempotency-repo.ts";
import { MessageStatusRepo } from "../store/message-status-repo.ts";
import { OutboundMediaStore } from "../store/outbound-media.ts";
import { IncomingMediaStore } from "../store/incoming-media.ts";
import { retryTransient } from "../store/mongo.ts";
import type { RuntimeOptions } from "./runtime.ts";
import { OutboundSender } from "./outbound.ts";
import { SendPacer } from "./send-pacing.ts";

/** Media stored for a send that never reached an owner is deleted after this long (media a live queued
 * send still names is kept: see pruneOutboundMedia). */
const ORPHAN_MEDIA_MS = 3600_000;
const PRUNE_EVERY_MS = 600_000;
/** Status records are kept as long as account events (EVENTS_RETENTION_MS), or this when that is 0. */
const STATUS_RETENTION_FALLBACK_MS = 30 * 24 * 3600_000;

export interface Outbound {
  sender: OutboundSender;
  statuses: MessageStatusRepo;
  /** What the session runtime records of messages: receipts, and the bytes of received media. */
  runtimeHooks: Pick<RuntimeOptions, "recordAck" | "keepIncomingMedia">;
  /** Sends the account's sends a lost owner left queued (OutboundSender.resume), logging what it did. */
  resume(accountId: string): void;
  /** Stops the pruning. */
  close(): void;
}

export interface OutboundHooks {
  fence(workspaceId: string): Fence | null;
  engineSend(accountId: string, message: OutboundMessage): Promise<{ id: string }>;
  logger: { info(...args: unknown[]): void; warn(...args: unknown[]): void };
  /** Told the node's send queue depth whenever it changes. */
  onQueueDepth?: (depth: number) => void;
}

export function openOutbound(db: Db, cfg: Config, hooks: OutboundHooks): Outbound {
  const idempotency = new IdempotencyRepo(db, cfg.idempotencyTtlMs);
  const statuses = new MessageStatusRepo(db, cfg.eventsRetentionMs || STATUS_RETENTION_FALLBACK_MS);
  const media = new OutboundMediaStore(db);
  const policy = new AddressPolicy(cfg.webhookAllowPrivate);
  // Half the request timeout: the send, and the answer's way back, fit in the rest.
  const pacer = new SendPacer({
    minGapMs: cfg.sendMinGapMs,
    maxWaitMs: cfg.requestTimeoutMs > 0 ? cfg.requestTimeoutMs / 2 : Infinity,
    onDepth: hooks.onQueueDepth,
  });
  const sender = new OutboundSender({
    idempotency,
    statuses,
    media,
    fetchMedia: (url, signal) =>
      fetchMedia(url, { policy, maxBytes: cfg.mediaMaxBytes, timeoutMs: cfg.mediaFetchTimeoutMs, signal }),
    pace: (accountId, opts) => pacer.turn(accountId, Date.now(), opts),
    admit: (accountId) => pacer.admit(accountId),
    ...hooks,
  });
  // Every worker prunes (idempotent), so expired records go while any worker runs.
  const timer = setInterval(() => {
    const now = new Date();
    Promise.all([
      idempotency.prune(now),
      statuses.prune(now),
      pruneOutboundMedia(media, idempotency, new Date(now.getTime() - ORPHAN_MEDIA_MS), now),
    ]).catch((err) => hooks.logger.warn(`outbound: pruning failed: ${(err as Error).message}`));
  }, PRUNE_EVERY_MS);
  timer.unref();
  const resume = (accountId: string) =>
    void sender
      .resume(accountId)
      .then((n) => n > 0 && hooks.logger.info(`Resuming ${n} queued sends of ${accountId}`))
      .catch((err: Error) => hooks.logger.warn(`Queued sends of ${accountId} not resumed: ${err.message}`));
  const incoming = openIncomingMedia(db, cfg, hooks.logger);
  return {
    sender,
    statuses,
    resume,
    runtimeHooks: {
      recordAck: (ack) => statuses.recordReceipt(ack),
      keepIncomingMedia: incoming
        ? (meta, data) => retryTransient(() => incoming.store.put(meta, data))
        : undefined,
    },
    close: () => {
      clearInterval(timer);
      clearInterval(incoming?.timer);
    },
  };
}

/**
 * Deletes outbound media stored before `before`, except what a live `recorded` record still names: a
 * send queued while its account is down (sent by its owner once connected, for as long as the record
 * lives, IDEMPOTENCY_TTL_MS) keeps its bytes. The records are read first: a record written after that
 * names media stored moments before it (a request's time), never media older than `before`.
 */
export async function pruneOutboundMedia(
  media: OutboundMediaStore,
  idempotency: IdempotencyRepo,
  before: Date,
  now = new Date(),
): Promise<number> {
  const keep = await idempotency.queuedMediaIds(now);
  return media.prune(before, keep);
}

/** The store of received media and its pruning, every tenth of the retention (at least every 10
 * minutes, at most every second); null when INCOMING_MEDIA_RETENTION_MS is 0 (media not kept). */
function openIncomingMedia(
  db: Db,
  cfg: Config,
  logger: OutboundHooks["logger"],
): { store: IncomingMediaStore; timer: NodeJS.Timeout } | null {
  const retentionMs = cfg.incomingMediaRetentionMs;
  if (retentionMs <= 0) return null;
  const store = new IncomingMediaStore(db, retentionMs);
  const timer = setInterval(
    () => {
      store.prune().catch((err) => logger.warn(`incoming media: pruning failed: ${(err as Error).message}`));
    },
    Math.min(Math.max(retentionMs / 10, 1000), PRUNE_EVERY_MS),
  );
  timer.unref();
  return { store, timer };
}
