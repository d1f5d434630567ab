// Documents and views of the webhooks feature (collections `webhook_endpoints`, `webhook_outbox`,
// `webhook_leases`). The documents are defined by the store (src/store/webhook-docs.ts).
import {
  DELIVERY_STATUSES,
  type DeliveryStatus,
  type EndpointDoc,
  type EndpointInfo,
  type EndpointTarget,
  type OutboxDoc,
} from "../store/webhook-docs.ts";

export {
  DELIVERY_STATUSES,
  type DeliveryStatus,
  type EndpointDoc,
  type EndpointInfo,
  type EndpointTarget,
  type OutboxDoc,
};

/** An endpoint as REST shows it; `secret` only in the answer to create; `secretUnreadable` only when
 * no configured key opens its secret (its deliveries wait until one does). */
export interface EndpointView {
  id: string;
  workspaceId: string;
  url: string;
  events: string[];
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
  secret?: string;
  secretUnreadable?: true;
}

export interface DeliveryView {
  id: string;
  eventId: string;
  endpointId: string;
  accountId: string;
  event: string;
  seq: number;
  status: DeliveryStatus;
  attempts: number;
  nextAttemptAt: string;
  lastError: string | null;
  lastStatusCode: number | null;
  createdAt: string;
  deliveredAt: string | null;
  payload: unknown;
}

/** @param secret shown in the view (only the answer to create has it) */
export function toEndpointView(doc: EndpointInfo, secret?: string): EndpointView {
  const view: EndpointView = {
    id: doc._id,
    workspaceId: doc.workspaceId,
    url: doc.url,
    events: doc.events,
    enabled: doc.enabled,
    createdAt: new Date(doc.createdAt).toISOString(),
    updatedAt: new Date(doc.updatedAt).toISOString(),
  };
  if (secret !== undefined) view.secret = secret;
  if (doc.secretUnreadable) view.secretUnreadable = true;
  return view;
}

export function toDeliveryView(doc: OutboxDoc): DeliveryView {
  return {
    id: doc._id,
    eventId: doc.eventId,
    endpointId: doc.endpointId,
    accountId: doc.accountId,
    event: doc.event,
    seq: doc.seq,
    status: doc.status,
    attempts: doc.attempts,
    nextAttemptAt: new Date(doc.nextAttemptAt).toISOString(),
    lastError: doc.lastError,
    lastStatusCode: doc.lastStatusCode,
    createdAt: new Date(doc.createdAt).toISOString(),
    deliveredAt: doc.deliveredAt ? new Date(doc.deliveredAt).toISOString() : null,
    payload: doc.payload,
  };
}
