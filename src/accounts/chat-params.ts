// The params and results of the chat, contact and group actions (issue #15), defined once like
// ACCOUNT_PARAMS (params.ts): `accounts.*` and `session.*` validate with them, and the REST route
// table (src/gateway/routes/chats.ts) places them in the path, query or body.
import { CHAT_ID_PATTERN, GROUP_ID_PATTERN, MAX_PAGE_LIMIT } from "../engines/directory.ts";
import type {
  ChatMessage,
  ChatSummary,
  ContactInfo,
  GroupChange,
  GroupInfo,
  NumberCheck,
  Page,
} from "../engines/directory.ts";
import { ValidationError } from "../errors.ts";
import { ID_PATTERN, type Rule, type Rules } from "./params.ts";
import type { AccountParams } from "./types.ts";

const PHONE_PATTERN = /^\+?[0-9]{6,16}$/;
/** A participant: a phone number, or a person's chat id. */
const PARTICIPANT_PATTERN = /^(\+?[0-9]{6,16}|[0-9]{6,32}@c\.us)$/;
export const MAX_PARTICIPANTS = 256;

const accountId: Rule = { type: "string", pattern: ID_PATTERN, description: "Account id" };
const chatId: Rule = {
  type: "string",
  pattern: CHAT_ID_PATTERN,
  description: "Chat id: `<number>@c.us` (a person), `<id>@g.us` (a group) or `<id>@lid`",
};
const groupId: Rule = { type: "string", pattern: GROUP_ID_PATTERN, description: "Group id (`…@g.us`)" };
const participants: Rule = {
  type: "array",
  items: { type: "string", min: 1, max: 64 },
  min: 1,
  max: MAX_PARTICIPANTS,
  description: "Phone numbers (international format) or chat ids (`…@c.us`)",
};
/** Page params; strings, as query values reach the gateway's check unconverted. */
const page: Rules = {
  limit: {
    type: "string",
    pattern: /^([1-9][0-9]{0,2}|1000)$/,
    optional: true,
    description: `Entries per page, 1–${MAX_PAGE_LIMIT} (50 when absent)`,
  },
  cursor: {
    type: "string",
    pattern: /^[A-Za-z0-9_-]{1,400}$/,
    optional: true,
    description: "`nextCursor` of the previous page",
  },
};

/** Params of each chat action, beside the `workspaceId` every call carries. */
export const CHAT_PARAMS = {
  chats: { accountId, ...page },
  chatMessages: { accountId, chatId, ...page },
  markRead: { accountId, chatId },
  sendTyping: { accountId, chatId },
  contacts: { accountId, ...page },
  numberExists: {
    accountId,
    phone: {
      type: "string",
      pattern: PHONE_PATTERN,
      description: "Phone number in international format, digits only (a leading + is allowed)",
    },
  },
  groups: { accountId, ...page },
  createGroup: {
    accountId,
    name: { type: "string", min: 1, max: 100, description: "Group name (subject)" },
    participants,
  },
  addParticipants: { accountId, groupId, participants },
  removeParticipants: { accountId, groupId, participants },
} as const satisfies Record<string, Rules>;

export interface PageParams extends AccountParams {
  limit?: string;
  cursor?: string;
}
export interface ChatParams extends AccountParams {
  chatId: string;
}
export interface ParticipantsParams extends AccountParams {
  groupId: string;
  participants: string[];
}

/** `accounts.*` and `session.*` chat actions: [params, result]. */
export interface ChatActions {
  chats: [PageParams, Page<ChatSummary>];
  chatMessages: [PageParams & ChatParams, Page<ChatMessage>];
  markRead: [ChatParams, { chatId: string; read: true }];
  sendTyping: [ChatParams, { chatId: string; typing: true }];
  contacts: [PageParams, Page<ContactInfo>];
  numberExists: [AccountParams & { phone: string }, NumberCheck];
  groups: [PageParams, Page<GroupInfo>];
  createGroup: [AccountParams & { name: string; participants: string[] }, GroupChange];
  addParticipants: [ParticipantsParams, GroupChange];
  removeParticipants: [ParticipantsParams, GroupChange];
}

export type ChatAction = keyof ChatActions;
export const CHAT_ACTIONS = Object.keys(CHAT_PARAMS) as ChatAction[];

/** The participants of a group change, each checked (the array rule checks lengths only). */
export function checkedParticipants(list: readonly string[]): string[] {
  const bad = list.filter((p) => !PARTICIPANT_PATTERN.test(p));
  if (bad.length)
    throw new ValidationError("participants must be phone numbers or chat ids (…@c.us)", {
      field: "participants",
      invalid: bad,
    });
  return [...list];
}

/** The page request of string params (validated by the rules above). */
export function pageRequestOf(p: { limit?: string; cursor?: string }): { limit?: number; cursor?: string } {
  return { limit: p.limit === undefined ? undefined : Number(p.limit), cursor: p.cursor };
}
