// Incoming messages: what an engine reports (`message` event, src/engines/base.ts) and what the
// `account.message` event carries. The event keeps the fields of the text-only days (id, from, to,
// text, timestamp) and adds the rest; media bytes never travel in an event: the owner keeps them in
// GridFS (src/store/incoming-media.ts) and the event names the route that serves them.
import type { ContactInput, LocationInput } from "./types.ts";
import { normalMimetype } from "./validate.ts";

/** The kinds of incoming message; anything else WhatsApp sends (polls, stickers, calls…) is `other`. */
export const INCOMING_TYPES = [
  "text",
  "image",
  "document",
  "audio",
  "video",
  "sticker",
  "location",
  "contact",
  "reaction",
  "other",
] as const;
export type IncomingType = (typeof INCOMING_TYPES)[number];

/** A received file, as the engine downloaded it. */
export interface IncomingMediaFile {
  data: Buffer;
  mimetype: string;
  filename?: string;
}

/** An incoming message as an engine reports it. */
export interface IncomingMessage {
  id: string;
  /** The chat: the sender's number for a person, the group's id (`…@g.us`) for a group. */
  from: string;
  to?: string;
  /** The text, or the caption of a media message ("" when there is none). */
  text: string;
  /** Seconds since the epoch, as WhatsApp gives it. */
  timestamp: number;
  /** @default "text" */
  type?: IncomingType;
  /** Group messages: who in the group wrote it. */
  author?: string;
  /** Id of the message this one quotes (a reply), or reacts to (a reaction). */
  quotedId?: string;
  media?: IncomingMediaFile;
  /** The engine saw media but could not download it (expired on the phone, network). */
  mediaError?: string;
  location?: LocationInput;
  /** vCards of a `contact` message, each with the name and number read from it where it has them. */
  contacts?: (Partial<ContactInput> & { vcard: string })[];
  /** Reaction: the emoji ("" when a reaction was taken back). */
  emoji?: string;
}

/** Media of an `account.message` event. `mediaUrl` is null when the bytes could not be kept. */
export interface IncomingMediaView {
  mimetype: string;
  filename: string | null;
  size: number;
  mediaUrl: string | null;
}

/** The `account.message` event (beside `accountId`, `workspaceId`, and the `cursor` of the log). */
export interface IncomingMessageEvent {
  id: string;
  from: string;
  to?: string;
  text: string;
  timestamp: number;
  type: IncomingType;
  /** Who wrote it: the group member (`author`) in a group, `from` otherwise. */
  sender: string;
  author?: string;
  isGroup: boolean;
  caption?: string;
  quotedId?: string;
  media?: IncomingMediaView;
  /** Why a media message came without its media (the engine could not download it). */
  mediaError?: string;
  location?: LocationInput;
  contacts?: IncomingMessage["contacts"];
  emoji?: string;
}

/** Path of GET …/messages/:messageId/media of a message (the id may hold `@`, so it is encoded). */
export function incomingMediaPath(accountId: string, messageId: string): string {
  return `/api/v1/accounts/${encodeURIComponent(accountId)}/messages/${encodeURIComponent(messageId)}/media`;
}

/** The event of `m`; `kept` says whether its media bytes were stored (and so may be fetched). */
export function incomingEventOf(accountId: string, m: IncomingMessage, kept: boolean): IncomingMessageEvent {
  const type = m.type ?? (m.media ? "document" : "text");
  const isGroup = m.from.endsWith("@g.us");
  const event: IncomingMessageEvent = {
    id: m.id,
    from: m.from,
    text: m.text,
    timestamp: m.timestamp,
    type,
    sender: isGroup && m.author ? m.author : m.from,
    isGroup,
  };
  if (m.to !== undefined) event.to = m.to;
  if (m.author) event.author = m.author;
  if (m.media && m.text) event.caption = m.text;
  if (m.quotedId) event.quotedId = m.quotedId;
  if (m.media)
    event.media = {
      mimetype: m.media.mimetype,
      filename: m.media.filename ?? null,
      size: m.media.data.length,
      mediaUrl: kept ? incomingMediaPath(accountId, m.id) : null,
    };
  if (m.mediaError && !m.media) event.mediaError = m.mediaError;
  if (m.location) event.location = m.location;
  if (m.contacts?.length) event.contacts = m.contacts;
  if (m.emoji !== undefined) event.emoji = m.emoji;
  return event;
}

/** The name and first number of a vCard (FN and TEL lines), for a `contact` message's summary. */
export function contactOfVcard(vcard: string): Partial<ContactInput> & { vcard: string } {
  const contact: Partial<ContactInput> & { vcard: string } = { vcard };
  const name = /^FN(?:;[^:]*)?:(.*)$/im.exec(vcard)?.[1]?.trim();
  // A WhatsApp vCard's TEL has `waid=<digits>`; otherwise the digits of the number itself.
  const tel = /^(?:item\d+\.)?TEL([^:]*):(.*)$/im.exec(vcard);
  const number = /waid=([0-9]+)/i.exec(tel?.[1] ?? "")?.[1] ?? tel?.[2]?.replace(/[^0-9]/g, "");
  if (name) contact.name = name;
  if (number) contact.phoneNumber = number;
  return contact;
}

/** `Content-Disposition` of served media: always `attachment` (a received file is whatever its sender
 * made it, so it is never rendered in the gateway's origin), with its name when it has one, as RFC 6266
 * says: a plain `filename` for old clients, and the exact name in `filename*`. */
export function contentDisposition(filename: string | null): string {
  if (!filename) return "attachment";
  const plain = filename.replace(/[^\x20-\x7e]|["\\]/g, "_");
  const exact = encodeURIComponent(filename).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${plain}"; filename*=UTF-8''${exact}`;
}

/** The Content-Type a received file is served with: its stored mimetype when that is a `type/subtype`
 * (parameters kept) of printable ASCII, else application/octet-stream. The sender's WhatsApp declared
 * it: a control character or one past U+00FF would make Node refuse the header (a 500). */
export function mediaContentType(mimetype: string | undefined): string {
  const value = (mimetype ?? "").trim();
  if (value.length > 255 || !/^[\x20-\x7e]+$/.test(value) || !normalMimetype(value))
    return "application/octet-stream";
  return value;
}
