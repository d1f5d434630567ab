// The documents of the webhooks collections (`webhook_endpoints`, `webhook_outbox`), as stored.

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

/** An endpoint as its workspace's calls read it: everything but the secret. `secretUnreadable`: no
 * configured key (SECRETS_KEY, SECRETS_KEY_PREVIOUS) opens its secret, so its deliveries wait. */
export type EndpointInfo = Omit<EndpointDoc, "secret"> & { secretUnreadable?: true };

/** What recording an event reads of an endpoint: who it is and which events it takes. */
export type EndpointTarget = Pick<EndpointDoc, "_id" | "events">;

export type DeliveryStatus = "pending" | "delivered" | "dead";

export const DELIVERY_STATUSES: readonly DeliveryStatus[] = ["pending", "delivered", "dead"];

/** `webhook_outbox` document: one event for one endpoint. `_id` is its queue position (`slotId`:
 * `<endpointId>|<accountId>|<seq>`); `{eventId, endpointId}` is unique too. */
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
  /** The token of the last resend that made it pending again: a resend tried again after an answer
   * lost finds its own write done. */
  resendToken?: string;
}
