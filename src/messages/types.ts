// Outbound messages (POST /api/v1/accounts/:id/messages): the kinds an account can send, what an
// engine is handed, and what a send answers. Pure types and constants, shared by the gateway side
// (validation), the owner (idempotency, media) and the engines.

export const MESSAGE_TYPES = [
  "text",
  "image",
  "document",
  "audio",
  "video",
  "location",
  "contact",
  "reaction",
] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

/** The types that carry a file. */
export const MEDIA_TYPES: readonly MessageType[] = ["image", "document", "audio", "video"];

/** What a sender gives as media: bytes inline, or a URL the owner fetches. */
export type MediaInput =
  | { url: string; mimetype?: string; filename?: string }
  | { base64: string; mimetype: string; filename?: string };

export interface LocationInput {
  latitude: number;
  longitude: number;
  name?: string;
  address?: string;
}

export interface ContactInput {
  name: string;
  phoneNumber: string;
}

/** A file ready to send. */
export interface MediaFile {
  data: Buffer;
  mimetype: string;
  filename?: string;
}

/** A message as an engine sends it: validated, media fetched. `to` is a phone number or a chat id. */
export interface OutboundMessage {
  to: string;
  type: MessageType;
  text?: string;
  caption?: string;
  media?: MediaFile;
  location?: LocationInput;
  contact?: ContactInput;
  /** Reaction: the emoji ("" takes a reaction back); the message reacted to is `replyTo`. */
  emoji?: string;
  /** Id of the message quoted (or reacted to). */
  replyTo?: string;
  /** Phone numbers or chat ids of people mentioned in the text or caption. */
  mentions?: string[];
}

/** An outbound message without its bytes: what crosses the bus from the gateway to the owner. */
export type MessageDraft = Omit<OutboundMessage, "media">;

/** Where the owner finds the bytes of a media message. */
export type MediaSource =
  | { kind: "stored"; mediaId: string; mimetype: string; filename?: string; size: number }
  | { kind: "url"; url: string; mimetype?: string; filename?: string };

/**
 * What a send answers. `pending`: recorded, the result is not known yet; `sent`: the engine sent it
 * (`id` is WhatsApp's message id); `failed`: the engine refused it; `uncertain`: the owner was lost
 * between handing the message to the engine and recording the result, so it may or may not have left
 * (it is never sent again under the same key).
 */
export type SendStatus = "pending" | "sent" | "failed" | "uncertain";

export interface SendResult {
  id: string | null;
  status: SendStatus;
  at: string;
  /** This answer repeats the first one for the same idempotency key. */
  duplicate?: boolean;
  /** Why a send failed (`failed`) or is `uncertain`. */
  error?: { type: string; message: string };
}

/** Delivery states of a sent message, in the order they are reached (`failed` ends it). */
export const ACK_STATUSES = ["sent", "delivered", "read", "played", "failed"] as const;
export type AckStatus = (typeof ACK_STATUSES)[number];

/** An acknowledgement of a sent message, as engines emit it. */
export interface MessageAck {
  id: string;
  status: AckStatus;
  /** Epoch ms. */
  at: number;
}

/** Forward only: a status replaces a lower one (`failed` replaces only `sent`). */
export function ackRank(status: string): number {
  const ranks: Record<string, number> = { sent: 1, delivered: 2, failed: 1.5, read: 3, played: 4 };
  return ranks[status] ?? 0;
}

/** A send as the owner receives it (`session.sendMessage`): checked, its bytes stored. */
export interface OwnerSend {
  workspaceId: string;
  accountId: string;
  draft: MessageDraft;
  media?: MediaSource;
  /** The idempotency key (header or clientId). */
  key?: string;
  /** requestDigest of what is asked (a key reused for another message is refused). */
  digest: string;
}
