// A pending outbox row as the recorder writes it, for the webhooks unit specs.
import { slotId } from "../../../src/store/webhook-outbox-repo.ts";
import type { OutboxDoc } from "../../../src/webhooks/types.ts";

export function pendingRow(
  endpointId: string,
  accountId: string,
  seq: number,
  { eventId = `ev_${accountId}_${seq}`, at = new Date() }: { eventId?: string; at?: Date } = {},
): OutboxDoc {
  return {
    _id: slotId(endpointId, accountId, seq),
    eventId,
    endpointId,
    accountId,
    workspaceId: "ws",
    event: "account.status",
    payload: { eventId },
    seq,
    status: "pending",
    attempts: 0,
    nextAttemptAt: at,
    lastError: null,
    lastStatusCode: null,
    createdAt: at,
    deliveredAt: null,
    recordedBy: "test",
  };
}
