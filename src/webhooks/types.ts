// Documents and views of the webhooks feature (collections `webhook_endpoints`, `webhook_outbox`,
// `webhook_leases`).

/** `webhook_endpoints` document. `_id` is the endpoint id (`wh_` + 16 random chars). */
export interface EndpointDoc {
  _id: string;
  workspaceId: string;
  url: string;
  /** HMAC key of the signatures; returned only by `webhooks.create`. */
  secret: string;
  /** Event names (`account.*`) or `["*"]`. */
  events: string[];
  enabled: boolean;
  createdAt: Date;
  updatedAt: Date;
}

/** An endpoint as REST shows it; `secret` only in the answer to create. */
export interface EndpointView {
  id: string;
  workspaceId: string;
  url: string;
  events: string[];
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
  secret?: string;
}

export type DeliveryStatus = "pending" | "delivered" | "dead";
export const DELIVERY_STATUSES: readonly DeliveryStatus[] = ["pending", "delivered", "dead"];

/** `webhook_outbox` document: one event for one endpoint. `_id` is `<endpointId>:<eventId>`. */
export interface OutboxDoc {
  _id: string;
  eventId: string;
  endpointId: string;
  workspaceId: string;
  accountId: string;
  event: string;
  payload: unknown;
  /** Position in the queue of (endpoint, account); delivered strictly in this order. */
  seq: number;
  status: DeliveryStatus;
  /** Attempts made so far (the next one is sent with `X-Switchboard-Delivery-Attempt: attempts + 1`). */
  attempts: number;
  nextAttemptAt: Date;
  lastError: string | null;
  /** HTTP status of the last attempt, if it got one. */
  lastStatusCode: number | null;
  createdAt: Date;
  deliveredAt: Date | null;
  /** Node that recorded the row (the insert that won). */
  recordedBy: string;
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

export function toEndpointView(doc: EndpointDoc, withSecret = false): EndpointView {
  const view: EndpointView = {
    id: doc._id,
    workspaceId: doc.workspaceId,
    url: doc.url,
    events: doc.events,
    enabled: doc.enabled,
    createdAt: new Date(doc.createdAt).toISOString(),
    updatedAt: new Date(doc.updatedAt).toISOString(),
  };
  if (withSecret) view.secret = doc.secret;
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
