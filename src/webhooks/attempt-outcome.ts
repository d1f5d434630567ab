// What the answer to one delivery attempt does to its row and to its queue's cursor. Accepted: the
// queue moves on at once and the row's `delivered` mark is written in the background. Refused with
// attempts left: the failure is written and the queue waits for the back-off (its next row must not
// overtake this one). Refused at the last attempt: the row is `dead` and the queue moves on.
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
    ctx.unmarked.add(row._id, attempt, res.statusCode);
    cursor.next = row.seq + 1;
    cursor.wakeAt = 0;
    return;
  }
  const failure = { attempts: attempt, error: res.error, statusCode: res.statusCode };
  if (attempt >= ctx.maxAttempts) {
    await ctx.outbox.markFailed(row._id, { ...failure, nextAttemptAt: null });
    ctx.remembered.handled(row);
    cursor.next = row.seq + 1;
    cursor.wakeAt = 0;
    ctx.logger.warn(
      `webhooks: ${row.event} ${row.eventId} to ${endpoint.url} is dead after ${attempt} attempts: ${res.error}`,
    );
    return;
  }
  const nextAttemptAt = new Date(Date.now() + backoffDelay(attempt, ctx.backoff));
  await ctx.outbox.markFailed(row._id, { ...failure, nextAttemptAt });
  ctx.remembered.retried(row, attempt, nextAttemptAt);
  cursor.wakeAt = nextAttemptAt.getTime();
}
