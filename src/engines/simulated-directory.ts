// The simulated engine's chats, contacts and groups (EngineDirectory, directory.ts), kept in memory per
// account like its sent messages: chats are made by the messages the account sends and receives,
// received ones count as unread until markRead, contacts are the people of those chats and groups.
// Kept per account (not per engine) so that a restart on the same node finds its chats again, as a
// phone would. Nothing is allocated for an account that never chats, so load tests stay light.
import { randomBytes } from "node:crypto";
import {
  chatIdOf,
  pageOf,
  phoneOf,
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
} from "./directory.ts";

/** The simulated rule of who has WhatsApp: every plausible number (6–16 digits) except those ending
 * in 404, so tests can name a number that is not on WhatsApp. */
export function simulatedNumberExists(phoneNumber: string): boolean {
  const digits = phoneNumber.replace(/^\+/, "");
  return /^[0-9]{6,16}$/.test(digits) && !digits.endsWith("404");
}

/** How long "typing…" shows, as in WhatsApp (it clears itself after about 25 s). */
export const TYPING_MS = 25_000;
/** Messages kept per chat (the latest). */
const MESSAGES_KEPT = 500;

interface SimChat {
  id: string;
  /** Order of the last activity (a counter: messages of one millisecond still sort). */
  seq: number;
  timestamp: number;
  unread: number;
  /** Oldest first, each with its order. */
  messages: { msg: ChatMessage; seq: number }[];
}

interface SimGroup {
  id: string;
  name: string;
  owner: string;
  createdAt: number;
  /** Chat id → admin. */
  participants: Map<string, boolean>;
}

let order = 0;
const nowSeconds = () => Math.floor(Date.now() / 1000);

export class SimulatedDirectory {
  private readonly chats = new Map<string, SimChat>();
  private readonly groups = new Map<string, SimGroup>();
  /** Pushnames learnt from incoming messages and group members. */
  private readonly people = new Map<string, string | null>();
  private readonly typing = new Map<string, number>();

  /** A message the account sent. */
  recordSent(m: { id: string; to: string; type: string; text?: string; caption?: string }, me: string): void {
    const chatId = chatIdOf(m.to);
    this.learn(chatId);
    this.add(chatId, {
      id: m.id,
      chatId,
      fromMe: true,
      from: chatIdOf(me),
      type: m.type,
      text: m.text ?? m.caption ?? "",
      timestamp: nowSeconds(),
    });
    this.typing.delete(chatId); // sending ends "typing…", as in WhatsApp
  }

  /** A message the account received: unread until markRead. */
  recordReceived(m: { id: string; from: string; text: string; timestamp: number }): void {
    const chatId = chatIdOf(m.from);
    this.learn(chatId);
    const msg: ChatMessage = {
      id: m.id,
      chatId,
      fromMe: false,
      from: chatId,
      type: "chat",
      text: m.text,
      timestamp: m.timestamp,
    };
    this.add(chatId, msg).unread++;
  }

  /** Whether a message the account sent or received is still kept (as WhatsApp Web keeps recent ones). */
  hasMessage(id: string): boolean {
    for (const chat of this.chats.values()) if (chat.messages.some((m) => m.msg.id === id)) return true;
    return false;
  }

  listChats(page: PageRequest): Page<ChatSummary> {
    const { items, nextCursor } = pageOf([...this.chats.values()], page, (c) => ({ t: c.seq, id: c.id }));
    return { items: items.map((c) => this.summary(c)), nextCursor };
  }

  chatMessages(chatId: string, page: PageRequest): Page<ChatMessage> {
    const chat = this.chat(chatId);
    const { items, nextCursor } = pageOf(chat.messages, page, (m) => ({ t: m.seq, id: m.msg.id }));
    return { items: items.map((m) => m.msg), nextCursor };
  }

  markRead(chatId: string): void {
    this.chat(chatId).unread = 0;
  }

  sendTyping(chatId: string): void {
    this.chat(chatId);
    this.typing.set(chatId, Date.now() + TYPING_MS);
  }

  /** Whether "typing…" shows in the chat now (what the other side would see). */
  isTyping(chatId: string): boolean {
    return (this.typing.get(chatId) ?? 0) > Date.now();
  }

  listContacts(page: PageRequest): Page<ContactInfo> {
    const contacts = [...this.people].map(([id, pushName]) => ({
      id,
      phoneNumber: phoneOf(id),
      name: null,
      pushName,
      isMyContact: false,
    }));
    return pageOf(contacts, page, (c) => ({ t: 0, id: c.id }));
  }

  numberExists(phoneNumber: string): NumberCheck {
    const exists = simulatedNumberExists(phoneNumber);
    return { phoneNumber, exists, chatId: exists ? chatIdOf(phoneNumber) : null };
  }

  listGroups(page: PageRequest): Page<GroupInfo> {
    const groups = [...this.groups.values()].map((g) => ({ g, seq: this.chats.get(g.id)?.seq ?? 0 }));
    const { items, nextCursor } = pageOf(groups, page, ({ g, seq }) => ({ t: seq, id: g.id }));
    return { items: items.map(({ g }) => groupInfo(g)), nextCursor };
  }

  createGroup(spec: { name: string; participants: string[] }, me: string): GroupChange {
    // WhatsApp's group ids: 120363 and twelve more digits.
    const id = `120363${Array.from(randomBytes(12), (b) => b % 10).join("")}@g.us`;
    const owner = chatIdOf(me);
    const group: SimGroup = {
      id,
      name: spec.name,
      owner,
      createdAt: nowSeconds(),
      participants: new Map([[owner, true]]),
    };
    this.groups.set(id, group);
    this.touch(id);
    const failed = this.join(group, spec.participants);
    return { group: groupInfo(group), failed };
  }

  addParticipants(groupId: string, participants: string[]): GroupChange {
    const group = this.group(groupId);
    const failed = this.join(group, participants);
    this.touch(groupId);
    return { group: groupInfo(group), failed };
  }

  removeParticipants(groupId: string, participants: string[]): GroupChange {
    const group = this.group(groupId);
    const failed: ParticipantFailure[] = [];
    for (const p of participants) {
      const id = chatIdOf(p);
      if (!group.participants.delete(id)) failed.push({ id, reason: "not_participant" });
    }
    this.touch(groupId);
    return { group: groupInfo(group), failed };
  }

  // ---- internals ----

  private join(group: SimGroup, participants: string[]): ParticipantFailure[] {
    const failed: ParticipantFailure[] = [];
    for (const p of participants) {
      const id = chatIdOf(p);
      if (!simulatedNumberExists(phoneOf(id))) failed.push({ id, reason: "not_on_whatsapp" });
      else if (group.participants.has(id)) failed.push({ id, reason: "already_participant" });
      else {
        group.participants.set(id, false);
        this.learn(id);
      }
    }
    return failed;
  }

  private chat(chatId: string): SimChat {
    const chat = this.chats.get(chatId);
    if (!chat) throw unknownChat(chatId);
    return chat;
  }

  private group(groupId: string): SimGroup {
    const group = this.groups.get(groupId);
    if (!group) throw unknownGroup(groupId);
    return group;
  }

  /** The chat, made when new, moved to the top of the list. */
  private touch(chatId: string): SimChat {
    const chat = this.chats.get(chatId) ?? { id: chatId, seq: 0, timestamp: 0, unread: 0, messages: [] };
    chat.seq = ++order;
    chat.timestamp = nowSeconds();
    this.chats.set(chatId, chat);
    return chat;
  }

  private add(chatId: string, msg: ChatMessage): SimChat {
    const chat = this.touch(chatId);
    chat.messages.push({ msg, seq: chat.seq });
    if (chat.messages.length > MESSAGES_KEPT) chat.messages.splice(0, chat.messages.length - MESSAGES_KEPT);
    return chat;
  }

  /** A person of a chat or group becomes a contact (groups are not people). */
  private learn(chatId: string): void {
    if (!chatId.endsWith("@c.us") || this.people.has(chatId)) return;
    this.people.set(chatId, `Contact ${phoneOf(chatId).slice(-4)}`);
  }

  private summary(c: SimChat): ChatSummary {
    const group = this.groups.get(c.id);
    return {
      id: c.id,
      name: group?.name ?? this.people.get(c.id) ?? `+${phoneOf(c.id)}`,
      isGroup: c.id.endsWith("@g.us"),
      unreadCount: c.unread,
      timestamp: c.timestamp,
      lastMessage: c.messages.at(-1)?.msg ?? null,
    };
  }
}

function groupInfo(g: SimGroup): GroupInfo {
  return {
    id: g.id,
    name: g.name,
    owner: g.owner,
    participants: [...g.participants].map(([id, isAdmin]) => ({ id, isAdmin })),
    createdAt: g.createdAt,
  };
}

const directories = new Map<string, SimulatedDirectory>();

/** The directory of an account's simulated phone (made on first use). */
export function simulatedDirectoryOf(accountId: string): SimulatedDirectory {
  let dir = directories.get(accountId);
  if (!dir) directories.set(accountId, (dir = new SimulatedDirectory()));
  return dir;
}
