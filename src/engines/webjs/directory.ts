// The webjs engine's chats, contacts and groups (EngineDirectory, ../directory.ts), each call mapped
// onto whatsapp-web.js: getChats, Chat.fetchMessages, sendSeen, Chat.sendStateTyping, getContacts,
// getNumberId, createGroup and GroupChat.add/removeParticipants. The mapping of the library's objects
// is pure (exported for unit tests); WebjsEngine (engine.ts) gets the calls by extending this class.
import type wweb from "whatsapp-web.js";
import { InvalidStateError } from "../../errors.ts";
import {
  chatIdOf,
  comparePositions,
  DEFAULT_PAGE_LIMIT,
  pageOf,
  positionOf,
  unknownChat,
  unknownGroup,
  type ChatMessage,
  type ChatSummary,
  type ContactInfo,
  type GroupChange,
  type GroupInfo,
  type NumberCheck,
  type Page,
  type PageRequest,
  type ParticipantFailure,
  type Position,
} from "../directory.ts";
import { WebjsLifecycle } from "./lifecycle.ts";

/** The most messages one chatMessages call loads into the page (older pages need more). */
const MAX_MESSAGES_LOADED = 10_000;

/** WhatsApp's status code of a participant change → the contract's reason. */
export function participantReason(code: number): string {
  const reasons: Record<number, string> = {
    403: "invite_only",
    404: "not_on_whatsapp",
    408: "recently_left",
    409: "already_participant",
    419: "group_full",
  };
  return reasons[code] ?? `whatsapp_${code}`;
}

export function messageOf(m: wweb.Message, chatId: string): ChatMessage {
  return {
    id: m.id._serialized,
    chatId,
    fromMe: m.fromMe,
    from: m.fromMe ? m.from : (m.author ?? m.from),
    type: m.type,
    text: m.body ?? "",
    timestamp: m.timestamp ?? 0,
  };
}

export function chatSummaryOf(c: wweb.Chat): ChatSummary {
  const id = c.id._serialized;
  return {
    id,
    name: c.name ?? "",
    isGroup: c.isGroup,
    unreadCount: c.unreadCount ?? 0,
    timestamp: c.timestamp ?? 0,
    lastMessage: c.lastMessage ? messageOf(c.lastMessage, id) : null,
  };
}

export function contactOf(c: wweb.Contact): ContactInfo {
  return {
    id: c.id._serialized,
    phoneNumber: c.number ?? c.id.user,
    name: c.name ?? null,
    pushName: c.pushname ?? null,
    isMyContact: Boolean(c.isMyContact),
  };
}

/** What a GroupChat carries of its group (its getters throw when WhatsApp sent no metadata). */
interface GroupMetadata {
  owner?: wweb.ChatId;
  creation?: number;
  participants?: wweb.GroupParticipant[];
}

export function groupOf(g: wweb.GroupChat): GroupInfo {
  const meta = (g as unknown as { groupMetadata?: GroupMetadata }).groupMetadata ?? {};
  return {
    id: g.id._serialized,
    name: g.name ?? "",
    owner: meta.owner?._serialized ?? null,
    participants: (meta.participants ?? []).map((p) => ({
      id: p.id._serialized,
      isAdmin: p.isAdmin || p.isSuperAdmin,
    })),
    createdAt: meta.creation ?? 0,
  };
}

/** The failures of a participant change, from whatsapp-web.js's per-participant codes. */
export function failuresOf(
  results: Record<string, { code?: number; statusCode?: number }>,
): ParticipantFailure[] {
  return Object.entries(results)
    .map(([id, r]) => ({ id, code: r.code ?? r.statusCode ?? 200 }))
    .filter((r) => r.code !== 200)
    .map(({ id, code }) => ({ id, reason: participantReason(code) }));
}

/**
 * Messages in the order WhatsApp keeps them (oldest first), each placed for paging: WhatsApp dates
 * them in seconds and their ids are random, so messages of one second are told apart by their rank
 * within it (`t` = seconds × 1000 + rank).
 */
export function placedMessages(chronological: ChatMessage[]): { message: ChatMessage; at: Position }[] {
  let second = -1;
  let rank = 0;
  return chronological.map((message) => {
    rank = message.timestamp === second ? rank + 1 : 0;
    second = message.timestamp;
    return { message, at: { t: message.timestamp * 1000 + rank, id: message.id } };
  });
}

export abstract class WebjsDirectory extends WebjsLifecycle {
  /** The whatsapp-web.js client of a connected session; InvalidStateError otherwise. */
  protected abstract connectedClient(what: string): wweb.Client;

  async listChats(page: PageRequest): Promise<Page<ChatSummary>> {
    const chats = (await this.connectedClient("list chats").getChats()).map(chatSummaryOf);
    return pageOf(chats, page, (c) => ({ t: c.timestamp, id: c.id }));
  }

  async chatMessages(chatId: string, page: PageRequest): Promise<Page<ChatMessage>> {
    const chat = await this.knownChat(this.connectedClient("read messages"), chatId);
    const limit = page.limit ?? DEFAULT_PAGE_LIMIT;
    const after = page.cursor === undefined ? null : positionOf(page.cursor);
    // `limit: 0` answers the messages the page holds, in WhatsApp's order. A positive limit also loads
    // earlier history into the chat, but its answer sorts messages of one second in no fixed order,
    // so the held messages are read again after it. Load until the page past the cursor is full (one
    // more entry says there is a next page) or the chat has no more.
    const held = async () =>
      placedMessages((await chat.fetchMessages({ limit: 0 })).map((m) => messageOf(m, chatId)));
    const pageOfHeld = (entries: { message: ChatMessage; at: Position }[]) => {
      const { items, nextCursor } = pageOf(entries, page, (e) => e.at);
      return { items: items.map((e) => e.message), nextCursor };
    };
    let loaded = await held();
    for (;;) {
      const past = after ? loaded.filter((e) => comparePositions(e.at, after) > 0).length : loaded.length;
      if (past > limit || loaded.length >= MAX_MESSAGES_LOADED) return pageOfHeld(loaded);
      await chat.fetchMessages({ limit: Math.min(MAX_MESSAGES_LOADED, loaded.length * 2 + limit + 1) });
      const more = await held();
      if (more.length <= loaded.length) return pageOfHeld(more);
      loaded = more;
    }
  }

  async markRead(chatId: string): Promise<void> {
    const client = this.connectedClient("mark a chat read");
    await this.knownChat(client, chatId);
    await client.sendSeen(chatId);
  }

  async sendTyping(chatId: string): Promise<void> {
    const chat = await this.knownChat(this.connectedClient("show typing"), chatId);
    await chat.sendStateTyping();
  }

  async listContacts(page: PageRequest): Promise<Page<ContactInfo>> {
    const contacts = await this.connectedClient("list contacts").getContacts();
    const people = contacts.filter((c) => c.isUser && !c.isGroup && !c.isMe).map(contactOf);
    return pageOf(people, page, (c) => ({ t: 0, id: c.id }));
  }

  async numberExists(phoneNumber: string): Promise<NumberCheck> {
    const digits = phoneNumber.replace(/[^0-9]/g, "");
    const id = await this.connectedClient("check a number").getNumberId(digits);
    return { phoneNumber, exists: id !== null, chatId: id?._serialized ?? null };
  }

  async listGroups(page: PageRequest): Promise<Page<GroupInfo>> {
    const chats = await this.connectedClient("list groups").getChats();
    const groups = chats.filter((c) => c.isGroup) as wweb.GroupChat[];
    const { items, nextCursor } = pageOf(groups, page, (g) => ({
      t: g.timestamp ?? 0,
      id: g.id._serialized,
    }));
    return { items: items.map(groupOf), nextCursor };
  }

  async createGroup(spec: { name: string; participants: string[] }): Promise<GroupChange> {
    const client = this.connectedClient("create a group");
    const created = await client.createGroup(spec.name, spec.participants.map(chatIdOf));
    if (typeof created === "string") throw new InvalidStateError(created);
    const group = await this.knownGroup(client, created.gid._serialized);
    return { group: groupOf(group), failed: failuresOf(created.participants) };
  }

  async addParticipants(groupId: string, participants: string[]): Promise<GroupChange> {
    const client = this.connectedClient("add participants");
    const group = await this.knownGroup(client, groupId);
    const result = await group.addParticipants(participants.map(chatIdOf), { sleep: 0 });
    if (typeof result === "string") throw new InvalidStateError(result, { groupId });
    return { group: groupOf(await this.knownGroup(client, groupId)), failed: failuresOf(result) };
  }

  async removeParticipants(groupId: string, participants: string[]): Promise<GroupChange> {
    const client = this.connectedClient("remove participants");
    const group = await this.knownGroup(client, groupId);
    const members = new Set(groupOf(group).participants.map((p) => p.id));
    const ids = participants.map(chatIdOf);
    const failed = ids.filter((id) => !members.has(id)).map((id) => ({ id, reason: "not_participant" }));
    const leaving = ids.filter((id) => members.has(id));
    if (leaving.length) await group.removeParticipants(leaving);
    return { group: groupOf(await this.knownGroup(client, groupId)), failed };
  }

  // ---- internals ----

  /** The chat, if the session has it: getChatById would make a new one for any valid id. */
  private async knownChat(client: wweb.Client, chatId: string): Promise<wweb.Chat> {
    const known = await client.pupPage?.evaluate((id: string) => {
      const page = window as unknown as StoreWindow;
      return Boolean(
        page.require("WAWebCollections").Chat.get(page.require("WAWebWidFactory").createWid(id)),
      );
    }, chatId);
    if (!known) throw unknownChat(chatId);
    return client.getChatById(chatId);
  }

  private async knownGroup(client: wweb.Client, groupId: string): Promise<wweb.GroupChat> {
    const chat = await this.knownChat(client, groupId).catch(() => null);
    if (!chat?.isGroup) throw unknownGroup(groupId);
    return chat as wweb.GroupChat;
  }
}

/** The little of WhatsApp Web's page that knownChat reads. */
interface StoreWindow {
  require(name: "WAWebCollections"): { Chat: { get(wid: unknown): unknown } };
  require(name: "WAWebWidFactory"): { createWid(id: string): unknown };
}
