// Account events leave a node through here: each is appended to the workspace's event log
// (src/store/events-repo.ts) and then broadcast with its `cursor`, so whoever missed the broadcast
// (a webhooks node that was down, a socket that reconnected) reads it from the log.
import type { Db } from "mongodb";
import { cursorOf, EventsRepo } from "../store/events-repo.ts";
import { asDatabaseError, createIndexRacing, isDatabaseUnavailable } from "../store/mongo.ts";
import { BroadcastOrder } from "./broadcast-order.ts";

export type Broadcast = (event: string, payload: unknown) => unknown;

/** Not logged: a QR code expires within a minute and is replaced every 20 s, so replaying one is of no
 * use (the `qr_scanning` status is logged, and the current QR is in the snapshot and at GET …/qr),
 * and the images would be most of the log's bytes. */
export const UNLOGGED_EVENTS: readonly string[] = ["account.qr"];

/** The workspace of an account event (`account.created` nests it in `account`). */
function workspaceOf(payload: unknown): string | null {
  const p = payload as { workspaceId?: unknown; account?: { workspaceId?: unknown } } | null;
  const ws = p?.workspaceId ?? p?.account?.workspaceId;
  return typeof ws === "string" ? ws : null;
}

export interface Logger {
  error(...args: unknown[]): void;
  warn(...args: unknown[]): void;
}

/** Deletes events older than `retentionMs` every tenth of it (at most hourly); every worker runs it
 * (pruning is idempotent), so the log stays bounded while any worker runs. 0 keeps events forever. A
 * prune still running when the next is due (thousands of workspaces on a busy database) is not joined
 * by another: they would only queue up on the database. `every` schedules (tests pass their own). */
export function startPruning(
  log: Pick<EventsRepo, "prune">,
  retentionMs: number,
  logger: Logger,
  every: (tick: () => void, ms: number) => NodeJS.Timeout = setInterval,
): NodeJS.Timeout | undefined {
  if (retentionMs <= 0) return undefined;
  let running = false;
  const timer = every(
    () => {
      if (running) return;
      running = true;
      log
        .prune(new Date(Date.now() - retentionMs))
        .catch((err) => logger.warn(`event log: pruning failed: ${(err as Error).message}`))
        .finally(() => (running = false));
    },
    Math.min(retentionMs / 10, 3600_000),
  );
  timer.unref();
  return timer;
}

/**
 * How an event leaves a node, in two steps so a caller can put a write between them: `record` writes
 * it to the log and resolves with the payload to broadcast (carrying its `cursor`); `send` broadcasts
 * that payload. Should the log write fail, `record` resolves with the payload as it was, so live sockets
 * still see the event; webhooks record such an event from the broadcast (as they did before the log),
 * and a replay will not have it. Except a sessions' publisher while the database is away: it rejects,
 * and the session's pipeline waits for the database (loggingPublisher's `throwWhenUnavailable`).
 */
export interface Publisher {
  /** `key` names the event across attempts at recording it (EventsRepo.append): the same for a retry. */
  record(event: string, payload: unknown, key?: string): Promise<unknown>;
  send: Broadcast;
}

/** Record, then send: the broadcast of one event on its own (`key`: see Publisher.record). */
export function publishVia(
  p: Publisher,
): (event: string, payload: unknown, key?: string) => Promise<unknown> {
  return async (event, payload, key) => p.send(event, await p.record(event, payload, key));
}

/** The node's event log (indexes ensured) and its publisher. */
export async function openEventLog(
  db: Db,
  broadcast: Broadcast,
  logger: Logger,
  /** EVENTS_RETENTION_MS (0: for ever). */
  retentionMs: number,
): Promise<{ events: EventsRepo; publisher: Publisher; publish: Broadcast }> {
  const events = new EventsRepo(db, { retentionMs });
  await createIndexRacing(() => events.ensureIndexes());
  // One order for both: a workspace's events leave in the order they were logged, whichever logged them.
  const order = new BroadcastOrder(broadcast, events.gapWait);
  // Sessions wait for the database (their pipeline tries again); a service's own event goes out unlogged.
  const publisher = loggingPublisher(events, broadcast, logger, { throwWhenUnavailable: true, order });
  return { events, publisher, publish: publishVia(loggingPublisher(events, broadcast, logger, { order })) };
}

/** `throwWhenUnavailable`: a log write that fails because the database is away rejects (as
 * DatabaseUnavailableError) instead of resolving with the payload unlogged: a session's pipeline then
 * waits for the database and logs the event (pipeline.ts). `order`: broadcasts in log order (shared by
 * the publishers of one log; by default this publisher's own, waiting as long as a reader at a gap). */
export function loggingPublisher(
  log: EventsRepo,
  broadcast: Broadcast,
  logger: Logger,
  {
    throwWhenUnavailable = false,
    order = new BroadcastOrder(broadcast, log.gapWait),
  }: { throwWhenUnavailable?: boolean; order?: BroadcastOrder } = {},
): Publisher {
  return {
    async record(event, payload, key) {
      const workspaceId = workspaceOf(payload);
      if (UNLOGGED_EVENTS.includes(event) || !workspaceId) return payload;
      try {
        // As logged: a try again that found its event stored answers the payload stored then.
        const logged = await log.append(workspaceId, event, payload, key);
        order.logged(workspaceId, logged.seq);
        return { ...(logged.payload as object), cursor: cursorOf(logged.seq) };
      } catch (err) {
        if (throwWhenUnavailable && isDatabaseUnavailable(err)) throw asDatabaseError(err);
        logger.error(`event log: ${event} of workspace ${workspaceId} not logged: ${(err as Error).message}`);
        return payload;
      }
    },
    send: (event, payload) => order.send(workspaceOf(payload), event, payload),
  };
}

/** One logged event as GET /api/v1/events and a resuming socket show it. */
export interface EventItem {
  cursor: string;
  event: string;
  payload: unknown;
  at: string;
}

export interface EventsPage {
  items: EventItem[];
  /** Cursor to pass as `after` next time: the last item's, or `after` itself when nothing is newer. */
  nextCursor: string;
}

/** While a page stops at a gap that may fill, it is read again this often. */
const GAP_POLL_MS = 100;

/** Up to `limit` events of a workspace after `afterSeq`, oldest first. `settle`: a page that stops at
 * a gap an insert in flight leaves (events stored past it) is read again until the gap fills or is
 * old enough to step over, so a short page means the end of the log (a socket's replay joins the live
 * events then: what was broadcast past the gap before it joined is in this page). */
export async function eventsPage(
  log: EventsRepo,
  workspaceId: string,
  afterSeq: number,
  limit: number,
  { settle = false } = {},
): Promise<EventsPage> {
  const deadline = Date.now() + log.gapWait + 1000;
  let { docs, stoppedAtGap } = await log.readPage(workspaceId, afterSeq, limit);
  while (settle && stoppedAtGap && docs.length < limit && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, GAP_POLL_MS));
    ({ docs, stoppedAtGap } = await log.readPage(workspaceId, afterSeq, limit));
  }
  const items = docs.map((d) => ({
    cursor: cursorOf(d.seq),
    event: d.event,
    payload: { ...(d.payload as object), cursor: cursorOf(d.seq) },
    at: d.at.toISOString(),
  }));
  return { items, nextCursor: items.at(-1)?.cursor ?? cursorOf(afterSeq) };
}
