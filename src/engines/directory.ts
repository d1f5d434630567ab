// The engine contract's directory calls (issue #15): chats, their messages, contacts, numbers and
// groups of a connected session. The types every engine answers with, and the cursor pagination they
// share: an engine lists everything it knows, sorted by `orderOf`, and `pageOf` cuts the page a
// cursor asks for, so every engine pages the same way.
import { NotFoundError, ValidationError } from "../errors.ts";
import { pageCursorOf, pagePositionOf } from "../store/page-cursor.ts";

/** A chat id as WhatsApp writes it: `<digits>@c.us` (a person), `<digits>[-<digits>]@g.us` (a
 * group) or `<digits>@lid`. */
export const CHAT_ID_PATTERN = /^[0-9]{1,32}(-[0-9]{1,20})?@(c\.us|g\.us|lid)$/;
export const GROUP_ID_PATTERN = /^[0-9]{1,32}(-[0-9]{1,20})?@g\.us$/;
/** Entries of a page when `limit` is absent. */
export const DEFAULT_PAGE_LIMIT = 50;
export const MAX_PAGE_LIMIT = 1000;

export interface PageRequest {
  /** Entries per page, 1–MAX_PAGE_LIMIT. @default DEFAULT_PAGE_LIMIT */
  limit?: number;
  /** `nextCursor` of the previous page; the first page when absent. */
  cursor?: string;
}

export interface Page<T> {
  items: T[];
  /** The next page's cursor; null on the last page. */
  nextCursor: string | null;
}

export interface ChatMessage {
  id: string;
  chatId: string;
  fromMe: boolean;
  /** The author: a phone number's chat id (in a group, the member who wrote). */
  from: string;
  type: string;
  /** Text, or a media message's caption ("" when none). */
  text: string;
  /** Seconds since the epoch, as WhatsApp dates messages. */
  timestamp: number;
}

export interface ChatSummary {
  id: string;
  name: string;
  isGroup: boolean;
  /** Messages received since the chat was last read (markRead clears it). */
  unreadCount: number;
  /** Seconds since the epoch of the last activity (0 when none). */
  timestamp: number;
  lastMessage: ChatMessage | null;
}

export interface ContactInfo {
  id: string;
  phoneNumber: string;
  /** The name in the phone's address book, if any. */
  name: string | null;
  /** The name the contact gave themselves, if known. */
  pushName: string | null;
  isMyContact: boolean;
}

export interface GroupParticipant {
  id: string;
  isAdmin: boolean;
}

export interface GroupInfo {
  id: string;
  name: string;
  /** The creator's chat id, when known. */
  owner: string | null;
  participants: GroupParticipant[];
  /** Seconds since the epoch (0 when unknown). */
  createdAt: number;
}

/** A participant a group change left out, and why (`not_on_whatsapp`, `already_participant`,
 * `not_participant`, or WhatsApp's own status code as text). */
export interface ParticipantFailure {
  id: string;
  reason: string;
}

/** The group after createGroup / addParticipants / removeParticipants, with who was left out. */
export interface GroupChange {
  group: GroupInfo;
  failed: ParticipantFailure[];
}

export interface NumberCheck {
  phoneNumber: string;
  exists: boolean;
  /** The number's chat id when it is on WhatsApp. */
  chatId: string | null;
}

/** What a connected engine can tell about and do with its chats, contacts and groups. Every call
 * needs a connected session (InvalidStateError before); an unknown chat or group is NotFoundError. */
export interface EngineDirectory {
  /** Chats, latest activity first. */
  listChats(page: PageRequest): Promise<Page<ChatSummary>>;
  /** A chat's messages, newest first. */
  chatMessages(chatId: string, page: PageRequest): Promise<Page<ChatMessage>>;
  /** Marks every message of the chat read (its unreadCount becomes 0; blue ticks for the sender). */
  markRead(chatId: string): Promise<void>;
  /** Shows "typing…" in the chat for a few seconds (WhatsApp clears it by itself). */
  sendTyping(chatId: string): Promise<void>;
  /** Contacts, by chat id. */
  listContacts(page: PageRequest): Promise<Page<ContactInfo>>;
  /** Whether a phone number has WhatsApp. */
  numberExists(phoneNumber: string): Promise<NumberCheck>;
  /** Groups the session is a member of, latest activity first. */
  listGroups(page: PageRequest): Promise<Page<GroupInfo>>;
  /** A new group with the session as its admin, plus the participants that could be added. */
  createGroup(spec: { name: string; participants: string[] }): Promise<GroupChange>;
  addParticipants(groupId: string, participants: string[]): Promise<GroupChange>;
  removeParticipants(groupId: string, participants: string[]): Promise<GroupChange>;
}

/** Every call of EngineDirectory (the worker's dispatch and the tests iterate it). */
export const DIRECTORY_CALLS = [
  "listChats",
  "chatMessages",
  "markRead",
  "sendTyping",
  "listContacts",
  "numberExists",
  "listGroups",
  "createGroup",
  "addParticipants",
  "removeParticipants",
] as const satisfies readonly (keyof EngineDirectory)[];

/** A phone number (digits, a leading + or spaces allowed) or a chat id → the chat id. */
export function chatIdOf(phoneOrChatId: string): string {
  if (phoneOrChatId.includes("@")) return phoneOrChatId;
  return `${phoneOrChatId.replace(/[^0-9]/g, "")}@c.us`;
}

/** The phone number of a person's chat id (`15551234567@c.us` → `15551234567`). */
export function phoneOf(chatId: string): string {
  return chatId.split("@")[0];
}

/** Where an entry sorts: by `t` descending (latest first), then by `id` ascending. */
export interface Position {
  t: number;
  id: string;
}

export function comparePositions(a: Position, b: Position): number {
  return b.t - a.t || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** A cursor, as clients see it (the same form as every list's, src/store/page-cursor.ts), of the last
 * entry of the page before. */
export function cursorOf(p: Position): string {
  return pageCursorOf(new Date(p.t), p.id);
}

/** The position a cursor names; ValidationError when it is not one of ours. */
export function positionOf(cursor: string): Position {
  const pos = pagePositionOf(cursor);
  if (pos) return { t: pos.at.getTime(), id: pos.id };
  throw new ValidationError("cursor is not a nextCursor of this list", { field: "cursor", value: cursor });
}

/** The page `req` asks for of `items` (each placed by `orderOf`): entries after the cursor, in order.
 * A cursor stays valid when the entry it names goes away. */
export function pageOf<T>(items: readonly T[], req: PageRequest, orderOf: (item: T) => Position): Page<T> {
  const limit = req.limit ?? DEFAULT_PAGE_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_LIMIT)
    throw new ValidationError(`limit must be 1–${MAX_PAGE_LIMIT}`, { field: "limit", value: req.limit });
  const after = req.cursor === undefined ? null : positionOf(req.cursor);
  const sorted = items
    .map((item) => ({ item, at: orderOf(item) }))
    .sort((a, b) => comparePositions(a.at, b.at));
  const rest = after ? sorted.filter((e) => comparePositions(e.at, after) > 0) : sorted;
  const page = rest.slice(0, limit);
  const last = page.at(-1);
  return {
    items: page.map((e) => e.item),
    nextCursor: rest.length > limit && last ? cursorOf(last.at) : null,
  };
}

/** NotFoundError of a chat the session does not have. */
export function unknownChat(chatId: string): NotFoundError {
  return new NotFoundError("Chat", chatId);
}

export function unknownGroup(groupId: string): NotFoundError {
  return new NotFoundError("Group", groupId);
}
