// Sends on the account's owner, at most once per idempotency key (README, "Sending exactly once").
// With a key, the record (src/store/idempotency-repo.ts) is written before the engine is called:
//   recorded → (media fetched) → sending (acknowledged) → engine.send → sent | failed | uncertain
//   (`uncertain`: the engine's browser went mid-send, SEND_INTERRUPTED)
// Between media and `sending` the send waits for its account's slot (send-pacing.ts), still `recorded`.
// A send with media takes a place in the node's MediaGate (8, at most 2 per account) before fetching or
// loading it and keeps it until handed to the engine, so a burst holds a bounded amount of media; one its
// account's queue would refuse is refused before it downloads anything.
// A request that finds the key answers what the record says; a `recorded` record left by an attempt
// that is no longer running is taken over and sent (its engine was never called), a `sending` one
// becomes `uncertain` (its engine may have sent it): never sent twice, never sent blindly.
// A send without a key has a deadline instead (handOverDeadline): past it, it is not handed to the engine.
import { randomBytes } from "node:crypto";
import type { Errors } from "moleculer";
import {
  idempotencyKeyReused,
  MessageRejectedError,
  NotFoundError,
  WorkspaceUnavailableError,
} from "../errors.ts";
import type { Fence } from "../placement/fence.ts";
import type { IdempotencyRepo } from "../store/idempotency-repo.ts";
import { idempotencyId } from "../store/idempotency-repo.ts";
import type { MessageStatusRepo } from "../store/message-status-repo.ts";
import { FREE_SLOT, MediaGate, type PaceSlot, type TurnOptions } from "./send-pacing.ts";
import type { OutboundMediaStore } from "../store/outbound-media.ts";
import { isDatabaseUnavailable, retryTransient } from "../store/mongo.ts";
import { retry } from "../retry.ts";
import { BoundedMap } from "../bounded-map.ts";
import { withTimeout } from "../with-timeout.ts";
import { checkContent, checkMimetype, filenameOf, normalMimetype } from "../messages/validate.ts";
import type { FetchedMedia } from "../messages/media-fetch.ts";
import type { MediaFile, OutboundMessage, OwnerSend, SendResult } from "../messages/types.ts";
import { failureOf, resultOf } from "../messages/results.ts";
import {
  ERR_INVALID_MEDIA,
  ERR_MEDIA_TYPE_MISMATCH,
  ERR_MEDIA_UNAVAILABLE,
  ERR_SEND_DEADLINE_EXCEEDED,
  ERR_SEND_INTERRUPTED,
  ERR_WORKSPACE_UNAVAILABLE,
} from "../errors.ts";

/** Tries of a sent message's result write after the first failed (backing off to 30 s: some 4 min). */
const RESULT_REWRITES = 12;

/** Reads of a connected account's queue (resume) while the database does not answer: the queue would
 * otherwise wait for the account's next `connected`, which may never come. */
const RESUME_READ_ATTEMPTS = 5;

/** A send without a key that could not be handed to its engine before its deadline (its media or its
 * slot took too long): it was not sent, and never will be; the client may send it again. */
function deadlineExceeded(accountId: string): MessageRejectedError {
  return new MessageRejectedError(
    "The message could not be handed to WhatsApp within the request's time (its media or its turn took " +
      "too long) and was not sent; send it again (with an Idempotency-Key a send may finish after its " +
      "request timed out, and a retry answers its result)",
    ERR_SEND_DEADLINE_EXCEEDED,
    { accountId },
    504,
  );
}

/**
 * When a send without a key must have reached its engine, for a call whose caller gives up `timeoutMs`
 * after `now`: halfway, as a paced send waits at most half the request timeout (outbound-setup.ts), so
 * the engine's send and the answer's way back fit in the rest. Past it the send fails instead: its
 * caller, told it timed out, would send it again. Undefined when the call has no timeout.
 */
export function handOverDeadline(timeoutMs: number | null | undefined, now = Date.now()): number | undefined {
  return timeoutMs && timeoutMs > 0 ? now + timeoutMs / 2 : undefined;
}

export interface SendOptions {
  /** A queued send taken over from a lost owner (`resume`): nobody waits for its answer, so it waits
   * for its slot however long the account's queue, and an engine that refuses it before sending
   * leaves it queued (`recorded`) for the account's next `connected` instead of dropping it.
   * @default false */
  resumed?: boolean;
  /** Epoch ms by which a send without a key must be handed to its engine (handOverDeadline); a keyed
   * send ignores it. @default none */
  deadline?: number;
}

export interface OutboundDeps {
  idempotency: IdempotencyRepo;
  statuses: MessageStatusRepo;
  media: OutboundMediaStore;
  /** Fetches a media URL; `signal` aborts it early (the send's deadline). */
  fetchMedia(url: string, signal?: AbortSignal): Promise<FetchedMedia>;
  /** This node's fence for the workspace, or null. */
  fence(workspaceId: string): Fence | null;
  /** The engine's send, on the account's running session. */
  engineSend(accountId: string, message: OutboundMessage): Promise<{ id: string }>;
  /** Waits for the account's next send slot (SEND_MIN_GAP_MS), which the send leaves as it reaches
   * the engine or gives up; refuses (SEND_QUEUE_FULL) a wait longer than a request may, unless
   * `unbounded` (a resumed send). @default no pacing */
  pace?: (accountId: string, opts: TurnOptions) => Promise<PaceSlot>;
  /** Throws SEND_QUEUE_FULL when the account's queue is already longer than a send may wait; asked
   * before a send's media is fetched or loaded. @default nothing refused early */
  admit?: (accountId: string) => void;
  /** Sends that may hold media bytes at once on this node (each up to MEDIA_MAX_BYTES), from their
   * fetch or load until handed to the engine. @default 8 */
  mediaInFlight?: number;
  /** Wait after the first failed read of an account's queue (resume) when the database does not
   * answer, doubled after each. @default 1000 */
  resumeRetryDelayMs?: number;
  logger: { warn(...args: unknown[]): void };
}

/** A send's place in the media gate: left once its media is handed over or given up (twice is nothing). */
interface MediaHold {
  leave(): void;
}

const NO_MEDIA: MediaHold = { leave: () => undefined };

/** Engine errors that mean nothing was handed to WhatsApp: the key is released, a retry may send. */
const REFUSED_BEFORE_SENDING = new Set(["INVALID_STATE", "NOT_OWNER", "WORKSPACE_UNAVAILABLE"]);

export class OutboundSender {
  /** Sends in flight on this node, by record id, with what they send: a concurrent repeat waits for
   * the first; the key reused for another message is refused, as it is once the record exists. */
  private readonly inFlight = new Map<
    string,
    { digest: string; result: Promise<SendResult>; mediaId?: string }
  >();
  private readonly mediaGate: MediaGate;
  /** Per account, the resume sending its queue (`resume`): new sends of the account go after it, and a
   * second resume's sends after the first's, so the queue leaves in the order it was asked. */
  private readonly resuming = new Map<string, Promise<void>>();
  /** Sends this node handed to WhatsApp whose `sent` result could not be written yet, by record id: a
   * retry of the key answers this result (the record still says `sending`, which would read as an
   * owner lost mid-send), and the write is tried again in the background until it lands. */
  private readonly unrecorded = new BoundedMap<string, { attempt: string; result: SendResult }>(10_000);

  constructor(private readonly deps: OutboundDeps) {
    this.mediaGate = new MediaGate(deps.mediaInFlight ?? 8);
  }

  async send(p: OwnerSend, opts: SendOptions = {}): Promise<SendResult> {
    const resumed = opts.resumed ?? false;
    // Set when the record stays `recorded`: its stored media is still to be sent.
    let queued = false;
    // Cleared when this call joins an attempt sending the same stored media (two resumes of the
    // account's queue): that attempt decides what becomes of it.
    let ownMedia = true;
    let failed = false;
    try {
      if (!resumed) await this.afterResume(p.accountId, p.key ? Infinity : (opts.deadline ?? Infinity));
      // Only a send without a key is held to its deadline: its client, told the request timed out, sends
      // again, and nothing tells the two apart. A keyed send finishes after its request timed out: a
      // retry with its key waits for it or answers its record, and never sends it twice.
      if (!p.key) return await this.sendNow(p, opts.deadline ?? Infinity);
      const id = idempotencyId(p.accountId, p.key);
      const running = this.inFlight.get(id);
      if (running && running.digest !== p.digest) throw idempotencyKeyReused(p.key);
      const mediaId = p.media?.kind === "stored" ? p.media.mediaId : undefined;
      if (running) {
        ownMedia = mediaId !== running.mediaId;
        return { ...(await running.result), duplicate: true };
      }
      const attempt = this.sendOnce(p, p.key, id, resumed, () => (queued = true));
      this.inFlight.set(id, { digest: p.digest, result: attempt, mediaId });
      try {
        return await attempt;
      } finally {
        this.inFlight.delete(id);
      }
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      // Whatever else became of the send, its bytes are of no further use; unless it failed with its
      // record still queued to send them (it failed before reaching the record, or a write's answer
      // was lost).
      if (p.media?.kind === "stored" && !queued && ownMedia) {
        const { mediaId } = p.media;
        if (!(failed && p.key && (await this.stillQueued(idempotencyId(p.accountId, p.key), mediaId))))
          await this.deps.media.delete(mediaId).catch(() => undefined);
      }
    }
  }

  /** Whether the record `id` is `recorded` with the stored media `mediaId` (true when it cannot be read:
   * a file kept too long is pruned as an orphan, a queued send without its file is lost). */
  private async stillQueued(id: string, mediaId: string): Promise<boolean> {
    const doc = await retryTransient(() => this.deps.idempotency.byId(id)).catch(() => undefined);
    if (doc === undefined) return true;
    const media = doc?.request?.media;
    return doc?.state === "recorded" && media?.kind === "stored" && media.mediaId === mediaId;
  }

  /**
   * Sends the queued sends of an account that a lost owner left `recorded` (its engine never called),
   * one after another in the order they were asked, through the usual keyed path: each is taken over
   * from its dead attempt or, if that attempt moved on meanwhile, answered from its record. Called when
   * the account is connected on this node. Returns how many were found. A database that does not
   * answer is asked again a few times, backing off (some 15 s in all).
   */
  async resume(accountId: string): Promise<number> {
    const baseDelayMs = this.deps.resumeRetryDelayMs ?? 1000;
    const all = await retry(() => retryTransient(() => this.deps.idempotency.queuedOf(accountId)), {
      attempts: RESUME_READ_ATTEMPTS,
      delayMs: (attempt) => baseDelayMs * 2 ** (attempt - 1),
      shouldRetry: isDatabaseUnavailable,
    });
    const queued = all.filter((doc) => !this.inFlight.has(doc._id));
    if (queued.length === 0) return 0;
    const before = this.resuming.get(accountId);
    const run: Promise<void> = (async () => {
      await before;
      for (const doc of queued) {
        const { workspaceId, key, digest, request } = doc;
        if (!this.deps.fence(workspaceId)) {
          // Moved away meanwhile (drained, rebalanced, its lease lost): the rest is the next owner's.
          this.deps.logger.warn(
            `queued sends of ${accountId} left to the next owner of ${workspaceId}: this node no longer owns it`,
          );
          return;
        }
        await this.send(
          { workspaceId, accountId, key, digest, draft: request!.draft, media: request!.media },
          { resumed: true },
        ).catch((err: Error) => this.deps.logger.warn(`queued send ${doc._id} not resumed: ${err.message}`));
      }
    })().finally(() => {
      if (this.resuming.get(accountId) === run) this.resuming.delete(accountId);
    });
    this.resuming.set(accountId, run);
    return queued.length;
  }

  /** Waits for the account's queue being resumed to have gone out (by `deadline`, epoch ms: past it,
   * SEND_DEADLINE_EXCEEDED). */
  private async afterResume(accountId: string, deadline: number): Promise<void> {
    const run = this.resuming.get(accountId);
    if (!run) return;
    if (deadline === Infinity) return run;
    const inTime = await withTimeout(
      run.then(() => true),
      Math.max(0, deadline - Date.now()),
    );
    if (!inTime) throw deadlineExceeded(accountId);
  }

  private slotOf(accountId: string, resumed: boolean): Promise<PaceSlot> {
    return this.deps.pace ? this.deps.pace(accountId, { unbounded: resumed }) : Promise.resolve(FREE_SLOT);
  }

  /** What the record `id` answers now. Gone, it went with its account (deleted meanwhile): 404. */
  private async answerOf(id: string, accountId: string, duplicate: boolean): Promise<SendResult> {
    const doc = await retryTransient(() => this.deps.idempotency.byId(id));
    if (!doc) throw new NotFoundError("Account", accountId);
    return resultOf(doc, duplicate);
  }

  private fenceOf(workspaceId: string): Fence {
    const fence = this.deps.fence(workspaceId);
    if (!fence) throw new WorkspaceUnavailableError(workspaceId, "this node does not own it (any more)");
    return fence;
  }

  /** Deletes the record of a send refused before its engine was called (a retry may send). */
  private async release(id: string, attempt: string): Promise<void> {
    await retryTransient(() => this.deps.idempotency.release(id, attempt)).catch((err: Error) =>
      // Left `recorded`, it would be sent at the account's next `connected`, unasked.
      this.deps.logger.warn(`releasing the send record ${id} failed: ${err.message}`),
    );
  }

  /** One keyed send: record, then send, then record the result. `queued`: called when the record
   * stays `recorded` (sent later by this node or the next owner). */
  private async sendOnce(
    p: OwnerSend,
    key: string,
    id: string,
    resumed: boolean,
    queued: () => void,
  ): Promise<SendResult> {
    const { idempotency } = this.deps;
    const fence = this.fenceOf(p.workspaceId);
    const attempt = randomBytes(8).toString("hex");
    const mine = { attempt, node: fence.node, epoch: fence.epoch };
    const begun = await retryTransient(() =>
      idempotency.begin({
        workspaceId: p.workspaceId,
        accountId: p.accountId,
        key,
        digest: p.digest,
        request: p.media ? { draft: p.draft, media: p.media } : { draft: p.draft },
        ...mine,
      }),
    );
    if (!begun.created) {
      const doc = begun.doc;
      if (doc.digest !== p.digest) throw idempotencyKeyReused(key);
      if (doc.state === "failed") throw failureOf(doc);
      if (doc.state === "sent" || doc.state === "uncertain") return resultOf(doc, true);
      if (doc.state === "sending") {
        // Sent from here, its result not written yet: that result.
        const known = this.unrecorded.get(id);
        if (known?.attempt === doc.attempt) return { ...known.result, duplicate: true };
        // Its attempt is not running here (see inFlight): its owner was lost after calling the engine.
        await idempotency.move(id, doc.attempt, ["sending"], "uncertain", {
          error: {
            type: "OWNER_LOST_MID_SEND",
            message: `The owner (${doc.node}) was lost after handing the message to WhatsApp and before recording the result; it may or may not have been sent, and is not sent again under this key`,
            code: 409,
          },
        });
        return this.answerOf(id, p.accountId, true);
      }
      // `recorded`: the attempt that wrote it never called its engine. Sent by this attempt instead.
      if (!(await idempotency.takeOver(id, doc.attempt, mine))) return this.answerOf(id, p.accountId, true);
    }
    let message: OutboundMessage;
    let slot = FREE_SLOT;
    let media = NO_MEDIA;
    try {
      ({ message, media } = await this.messageOf(p, Infinity, resumed));
      // Queued under the record (`recorded`): a lost owner's queue is sent by the next owner.
      slot = await this.slotOf(p.accountId, resumed);
      this.fenceOf(p.workspaceId);
    } catch (err) {
      slot.leave(false);
      media.leave();
      // The workspace lost while it waited: the next owner sends it (README, "Sending exactly once").
      if ((err as Errors.MoleculerError).type === ERR_WORKSPACE_UNAVAILABLE) queued();
      else await this.release(id, attempt);
      throw err;
    }
    try {
      return await this.handOver(p, id, attempt, message, slot, media, resumed, queued);
    } finally {
      slot.leave(false); // nothing when it left as the engine was called
      media.leave();
    }
  }

  /** The keyed send from `sending` on: the record acknowledged, the engine called, the result kept. */
  private async handOver(
    p: OwnerSend,
    id: string,
    attempt: string,
    message: OutboundMessage,
    slot: PaceSlot,
    media: MediaHold,
    resumed: boolean,
    queued: () => void,
  ): Promise<SendResult> {
    const { idempotency } = this.deps;
    // Acknowledged before the engine is called: from here on, a lost owner leaves `sending`.
    // A retried write may find its own first try applied: `sending` under this attempt is ours to send.
    if (!(await retryTransient(() => idempotency.move(id, attempt, ["recorded", "sending"], "sending")))) {
      // Taken over meanwhile (this attempt was thought lost): the record says what became of it.
      return this.answerOf(id, p.accountId, true);
    }
    let sent: { id: string };
    try {
      slot.leave(true);
      // Handed over: a slow or stuck engine send must not hold the node's media places.
      media.leave();
      sent = await this.deps.engineSend(p.accountId, message);
    } catch (err) {
      const e = err as Errors.MoleculerError;
      if (REFUSED_BEFORE_SENDING.has(e.type) && resumed) {
        // Not sent, and nobody to answer: queued again for the account's next `connected`.
        // A try again after one whose answer was lost finds it `recorded` already.
        const back = await retryTransient(() =>
          idempotency.move(id, attempt, ["sending", "recorded"], "recorded"),
        );
        if (back) queued();
      } else if (REFUSED_BEFORE_SENDING.has(e.type)) {
        await this.release(id, attempt);
      } else if (e.type === ERR_SEND_INTERRUPTED) {
        // The browser went mid-send: it may have left. Never sent again under this key; the answer is
        // what a retry gets, `uncertain`.
        const error = { type: e.type, message: e.message, code: e.code };
        await retryTransient(() => idempotency.move(id, attempt, ["sending"], "uncertain", { error }));
        const doc = await retryTransient(() => idempotency.byId(id));
        // Gone with its account (deleted meanwhile): the answer the record would have given.
        return doc
          ? resultOf(doc, false)
          : {
              id: null,
              status: "uncertain",
              at: new Date().toISOString(),
              error: { type: e.type, message: e.message },
            };
      } else {
        const error = { type: e.type || "SEND_FAILED", message: e.message, code: e.code || 500 };
        await retryTransient(() =>
          idempotency.move(id, attempt, ["sending", "uncertain"], "failed", { error }),
        );
      }
      throw err;
    }
    const at = new Date();
    // The message's status first: a key answered `sent` always names a message GET …/messages/:id knows.
    await this.recordSent(p, sent.id, at);
    const result: SendResult = { id: sent.id, status: "sent", at: at.toISOString() };
    await this.recordResult(id, attempt, result, at);
    return result;
  }

  /** Writes a sent message's result on its record, even over `uncertain` (set by someone who thought
   * this owner lost: facts win). One that fails is answered from memory and written again, backing
   * off, for some minutes. */
  private async recordResult(id: string, attempt: string, result: SendResult, at: Date): Promise<void> {
    const write = () =>
      retryTransient(() =>
        this.deps.idempotency.move(id, attempt, ["sending", "uncertain"], "sent", {
          messageId: result.id,
          error: undefined,
          // The time the first answer gives: a repeat answers the same.
          at,
        }),
      );
    try {
      await write();
      return;
    } catch (err) {
      this.deps.logger.warn(`send ${id}: result not recorded yet (${(err as Error).message}); trying again`);
    }
    this.unrecorded.set(id, { attempt, result });
    void retry(write, { attempts: RESULT_REWRITES, delayMs: (n) => Math.min(1000 * 2 ** (n - 1), 30_000) })
      .catch((err: Error) => this.deps.logger.warn(`send ${id}: result not recorded (${err.message})`))
      .finally(() => {
        if (this.unrecorded.get(id)?.attempt === attempt) this.unrecorded.delete(id);
      });
  }

  /** A send without a key: straight to the engine, if before `deadline` (epoch ms). */
  private async sendNow(p: OwnerSend, deadline: number): Promise<SendResult> {
    const { message, media } = await this.messageOf(p, deadline, false);
    let sent: { id: string };
    let slot = FREE_SLOT;
    try {
      slot = await this.slotOf(p.accountId, false);
      this.fenceOf(p.workspaceId);
      if (Date.now() >= deadline) throw deadlineExceeded(p.accountId);
      slot.leave(true);
      media.leave();
      sent = await this.deps.engineSend(p.accountId, message);
    } finally {
      slot.leave(false);
      media.leave();
    }
    const at = new Date();
    await this.recordSent(p, sent.id, at);
    return { id: sent.id, status: "sent", at: at.toISOString() };
  }

  private async recordSent(p: OwnerSend, messageId: string, at: Date): Promise<void> {
    // Retried like every other write of a send: a busy database (SQLITE_BUSY under load) must not
    // leave a key answered `sent` whose message GET …/messages/:id does not know.
    await retryTransient(() =>
      this.deps.statuses.advance({
        workspaceId: p.workspaceId,
        accountId: p.accountId,
        messageId,
        status: "sent",
        at,
        to: p.draft.to,
        type: p.draft.type,
      }),
    ).catch((err) =>
      this.deps.logger.warn(`message ${messageId}: status not recorded (${(err as Error).message})`),
    );
  }

  /**
   * The message with its media bytes, and its place in the media gate (`media.leave()` once handed
   * over or given up). A send its account's queue would refuse is refused before it waits for a place
   * or downloads anything (a resumed one waits its turn instead); a place not had by `deadline` (epoch
   * ms) is SEND_DEADLINE_EXCEEDED.
   */
  private async messageOf(
    p: OwnerSend,
    deadline: number,
    resumed: boolean,
  ): Promise<{ message: OutboundMessage; media: MediaHold }> {
    if (!p.media) return { message: { ...p.draft }, media: NO_MEDIA };
    if (!resumed) this.deps.admit?.(p.accountId);
    const leave = await this.mediaGate.enter(p.accountId, deadline, () => deadlineExceeded(p.accountId));
    try {
      // Again: the queue may have grown while this send waited for its place.
      if (!resumed) this.deps.admit?.(p.accountId);
      return { message: await this.mediaOf(p, deadline), media: { leave } };
    } catch (err) {
      leave();
      throw err;
    }
  }

  /** The message with its media bytes (read from the store, or fetched from the URL and checked); a
   * fetch still under way at `deadline` (epoch ms) is given up. */
  private async mediaOf(p: OwnerSend, deadline: number): Promise<OutboundMessage> {
    const src = p.media;
    if (!src) return { ...p.draft };
    let file: MediaFile;
    if (src.kind === "stored") {
      const mediaId = src.mediaId;
      const data = await retryTransient(() => this.deps.media.get(mediaId));
      if (!data)
        throw new MessageRejectedError(
          "The media of this send is no longer stored; send it again",
          ERR_MEDIA_UNAVAILABLE,
          {
            field: "media",
          },
        );
      file = { data, mimetype: src.mimetype, filename: src.filename };
    } else {
      const fetched = await this.fetchBefore(src.url, p.accountId, deadline);
      const mimetype = src.mimetype ?? normalMimetype(fetched.mimetype);
      if (!mimetype)
        throw new MessageRejectedError(
          "media.url answered no usable Content-Type; give media.mimetype",
          ERR_MEDIA_TYPE_MISMATCH,
          {
            field: "media.mimetype",
          },
        );
      if (fetched.data.length === 0)
        throw new MessageRejectedError("media.url answered an empty body", ERR_INVALID_MEDIA, {
          field: "media.url",
        });
      checkMimetype(p.draft.type, mimetype);
      checkContent(p.draft.type, mimetype, fetched.data);
      file = { data: fetched.data, mimetype, filename: src.filename ?? filenameOf(src.url) };
    }
    return { ...p.draft, media: file };
  }

  /** Fetches a media URL, given up at `deadline` (epoch ms) with SEND_DEADLINE_EXCEEDED. */
  private async fetchBefore(url: string, accountId: string, deadline: number): Promise<FetchedMedia> {
    if (deadline === Infinity) return this.deps.fetchMedia(url);
    const left = Math.ceil(deadline - Date.now());
    if (left <= 0) throw deadlineExceeded(accountId);
    const signal = AbortSignal.timeout(left);
    try {
      return await this.deps.fetchMedia(url, signal);
    } catch (err) {
      if (signal.aborted) throw deadlineExceeded(accountId);
      throw err;
    }
  }
}
