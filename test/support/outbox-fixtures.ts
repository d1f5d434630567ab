// An endpoint and an event of workspace ws1 as the outbox's specs record them.
import type { RecordedEvent } from "../../src/store/webhook-outbox-repo.ts";
import type { EndpointDoc } from "../../src/webhooks/types.ts";

export function endpoint(id: string): EndpointDoc {
  const now = new Date();
  return {
    _id: id,
    workspaceId: "ws1",
    url: "http://127.0.0.1:1/",
    secret: "s",
    events: ["*"],
    enabled: true,
    createdAt: now,
    updatedAt: now,
  };
}

/** Event number `n` of an account. */
export function event(accountId: string, n: number): RecordedEvent {
  return {
    eventId: `evt_${accountId}_${n}`,
    event: "account.status",
    workspaceId: "ws1",
    accountId,
    payload: { n },
  };
}
