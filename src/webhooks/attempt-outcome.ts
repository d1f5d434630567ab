// What the answer to one delivery attempt does to its row and to its queue's cursor. Accepted: the
// queue moves on at once and the row's `delivered` mark is written in the background. Refused with
// attempts left: the failure is written and the queue waits for the back-off (its next row must not
// overtake this one). Refused at the last attempt: the row is `dead` and the queue moves on. A failure
// whose write fails still counts (the queue waits for the back-off, and tries the write again then).
import type { Logger } from "moleculer";
import { backoffDelay, type BackoffOptions } from "./backoff.ts";
import type { DeliveredMarks } from "./delivered-marks.ts";
import type { AttemptResult } from "./http-delivery.ts";
import type { Cursor } from "./queue-cursors.ts";
import type { RememberedRows } from "./remembered-rows.ts";
import type { OutboxRepo } from "../store/webhook-outbox-repo.ts";
import type { EndpointDoc, OutboxDoc } from "./types.ts";

export interface OutcomeContext {
  outbox: Pick<OutboxRepo, "markFailed">;
  remembered: RememberedRows;
  unmarked: DeliveredMarks;
  maxAttempts: number;
  backoff: BackoffOptions;
  logger: Pick<Logger, "warn">;
}

/** Applies the answer `res` to attempt number `attempt` of `row` (an aborted attempt is not one). */
export async function applyOutcome(
  ctx: OutcomeContext,
  row: OutboxDoc,
  endpoint: EndpointDoc,
  cursor: Cursor,
  attempt: number,
  res: AttemptResult,
): Promise<void> {
  if (res.ok) {
    ctx.remembered.handled(row);
    ctx.unmarked.add({
      id: row._id,
      endpointId: row.endpointId,
      attempts: attempt,
      statusCode: res.statusCode,
    });
    cursor.next = row.seq + 1;
    cursor.wakeAt = 0;
    return;
  }
  const dead = attempt >= ctx.maxAttempts;
  const retryAt = new Date(Date.now() + backoffDelay(attempt, ctx.backoff));
  const failure = { attempts: attempt, error: res.error, statusCode: res.statusCode };
  const leftAs = {
    attempts: attempt,
    nextAttemptAt: retryAt,
    lastError: res.error,
    lastStatusCode: res.statusCode,
  };
  let written: boolean;
  try {
    written = await ctx.outbox.markFailed(row._id, { ...failure, nextAttemptAt: dead ? null : retryAt });
  } catch (err) {
    // The attempt was made all the same: it counts, and the next one waits for the back-off (the row
    // is remembered as the attempt left it; at the last attempt it is then written dead, not sent).
    ctx.remembered.retried(row, leftAs);
    cursor.wakeAt = retryAt.getTime();
    ctx.logger.warn(
      `webhooks: writing failed attempt ${attempt} of ${row._id} failed, written again at the next one: ${(err as Error).message}`,
    );
    return;
  }
  if (!written) {
    // No longer pending: finished by another holder of the endpoint (this node's lease was lost), or
    // removed. The row is read again, and walked past.
    ctx.remembered.handled(row);
    cursor.wakeAt = 0;
    return;
  }
  if (dead) {
    ctx.remembered.handled(row);
    cursor.next = row.seq + 1;
    cursor.wakeAt = 0;
    ctx.logger.warn(
      `webhooks: ${row.event} ${row.eventId} to ${endpoint.url} is dead after ${attempt} attempts: ${res.error}`,
    );
    return;
  }
  ctx.remembered.retried(row, leftAs);
  cursor.wakeAt = retryAt.getTime();
}
