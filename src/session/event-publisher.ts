// Account events leave a node through here: each is appended to the workspace's event log
// (src/store/events-repo.ts) and then broadcast with its `cursor`, so whoever missed the broadcast
// (a webhooks node that was down, a socket that reconnected) reads it from the log.
import type { Db } from "mongodb";
import { cursorOf, EventsRepo } from "../store/events-repo.ts";
import { createIndexRacing } from "../store/mongo.ts";

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
 * (pruning is idempotent), so the log stays bounded while any worker runs. 0 keeps events forever. */
export function startPruning(
  log: EventsRepo,
  retentionMs: number,
  logger: Logger,
): NodeJS.Timeout | undefined {
  if (retentionMs <= 0) return undefined;
  const timer = setInterval(
    () => {
      log
        .prune(new Date(Date.now() - retentionMs))
        .catch((err) => logger.warn(`event log: pruning failed: ${(err as Error).message}`));
    },
    Math.min(retentionMs / 10, 3600_000),
  );
  timer.unref();
  return timer;
}

/**
 * `broadcast`, with the event written to the log first. Should the write fail (the database away past
 * its retries), the event is still broadcast, without a cursor, so live sockets see it; webhooks record
 * such an event from the broadcast (as they did before the log), and a replay will not have it.
 */
/** The node's event log (indexes ensured) and its logged broadcast. */
export async function openEventLog(
  db: Db,
  broadcast: Broadcast,
  logger: Logger,
): Promise<{ events: EventsRepo; publish: Broadcast }> {
  const events = new EventsRepo(db);
  await createIndexRacing(() => events.ensureIndexes());
  return { events, publish: loggedBroadcast(events, broadcast, logger) };
}

export function loggedBroadcast(log: EventsRepo, broadcast: Broadcast, logger: Logger): Broadcast {
  return async (event, payload) => {
    const workspaceId = workspaceOf(payload);
    if (UNLOGGED_EVENTS.includes(event) || !workspaceId) return broadcast(event, payload);
    let cursor: string;
    try {
      cursor = cursorOf((await log.append(workspaceId, event, payload)).seq);
    } catch (err) {
      logger.error(`event log: ${event} of workspace ${workspaceId} not logged: ${(err as Error).message}`);
      return broadcast(event, payload);
    }
    return broadcast(event, { ...(payload as object), cursor });
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

/** Up to `limit` events of a workspace after `afterSeq`, oldest first. */
export async function eventsPage(
  log: EventsRepo,
  workspaceId: string,
  afterSeq: number,
  limit: number,
): Promise<EventsPage> {
  const docs = await log.readAfter(workspaceId, afterSeq, limit);
  const items = docs.map((d) => ({
    cursor: cursorOf(d.seq),
    event: d.event,
    payload: { ...(d.payload as object), cursor: cursorOf(d.seq) },
    at: d.at.toISOString(),
  }));
  return { items, nextCursor: items.at(-1)?.cursor ?? cursorOf(afterSeq) };
}
