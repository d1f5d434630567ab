// What the webhooks integration specs share: fast timings, account events as the runtime sends them,
// and an outbox row for a single attempt.
import type { AccountStatusEvent } from "../../../src/accounts/types.ts";
import type { OutboxDoc } from "../../../src/webhooks/types.ts";
import type { ConfigOverrides } from "../../support/cluster.ts";

export const FAST: ConfigOverrides = {
  webhookPollMs: 50,
  webhookBackoffBaseMs: 40,
  webhookBackoffMaxMs: 200,
  webhookTimeoutMs: 1000,
  webhookLeaseTtlMs: 3000,
  webhookMaxAttempts: 6,
};

let clock = Date.parse("2026-01-01T00:00:00Z");

/** An `account.status` event, each a few ms after the last. */
export function statusEvent(
  workspaceId: string,
  accountId: string,
  status: AccountStatusEvent["status"],
): AccountStatusEvent {
  clock += 7;
  return {
    accountId,
    workspaceId,
    sessionId: `simulated_${workspaceId}_1_abcdefgh`,
    status,
    previousStatus: null,
    node: "worker-1",
    epoch: 1,
    at: new Date(clock).toISOString(),
  };
}

/** An outbox row with what one delivery attempt reads of it. */
export function outboxRow(): OutboxDoc {
  return {
    _id: "o1",
    eventId: "evt_1",
    event: "account.status",
    workspaceId: "ws",
    accountId: "acc",
    seq: 1,
    createdAt: new Date(),
    payload: {},
    attempts: 0,
  } as unknown as OutboxDoc;
}
