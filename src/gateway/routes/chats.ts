// Chat, contact and group routes of an account (issue #15): each places the params of its
// `accounts.*` action (src/accounts/chat-params.ts) in the path, query or body. Lists page like
// GET /accounts: `?limit&cursor` → `{items, nextCursor}`.
import { CHAT_PARAMS } from "../../accounts/chat-params.ts";
import { placed, v1, type RouteSpec } from "../route-spec.ts";

const ACCOUNT = { accountId: "path" } as const;
const CHAT = { accountId: "path", chatId: "path" } as const;
const GROUP = { accountId: "path", groupId: "path" } as const;
const PAGED = "`{items, nextCursor}` (`nextCursor` null on the last page)";

export const CHAT_ROUTES: RouteSpec[] = [
  v1({
    id: "listChats",
    method: "GET",
    path: "/accounts/:accountId/chats",
    action: "accounts.chats",
    params: placed(CHAT_PARAMS.chats, ACCOUNT, "query"),
    summary: `Chats of a connected account, latest activity first: ${PAGED}`,
    tag: "chats",
    errors: [404, 409],
  }),
  v1({
    id: "listChatMessages",
    method: "GET",
    path: "/accounts/:accountId/chats/:chatId/messages",
    action: "accounts.chatMessages",
    params: placed(CHAT_PARAMS.chatMessages, CHAT, "query"),
    summary: `Messages of a chat, newest first: ${PAGED}; an unknown chat is 404`,
    tag: "chats",
    errors: [404, 409],
  }),
  v1({
    id: "markChatRead",
    method: "POST",
    path: "/accounts/:accountId/chats/:chatId/read",
    action: "accounts.markRead",
    params: placed(CHAT_PARAMS.markRead, CHAT),
    summary: "Mark every message of a chat read (its unreadCount becomes 0)",
    tag: "chats",
    errors: [404, 409],
  }),
  v1({
    id: "sendChatTyping",
    method: "POST",
    path: "/accounts/:accountId/chats/:chatId/typing",
    action: "accounts.sendTyping",
    params: placed(CHAT_PARAMS.sendTyping, CHAT),
    summary: "Show “typing…” in a chat (WhatsApp clears it after about 25 s, or when a message is sent)",
    tag: "chats",
    errors: [404, 409],
  }),
  v1({
    id: "listContacts",
    method: "GET",
    path: "/accounts/:accountId/contacts",
    action: "accounts.contacts",
    params: placed(CHAT_PARAMS.contacts, ACCOUNT, "query"),
    summary: `Contacts of a connected account, by chat id: ${PAGED}`,
    tag: "chats",
    errors: [404, 409],
  }),
  v1({
    id: "numberExists",
    method: "GET",
    path: "/accounts/:accountId/contacts/:phone/exists",
    action: "accounts.numberExists",
    params: placed(CHAT_PARAMS.numberExists, { accountId: "path", phone: "path" }),
    summary: "Whether a phone number has WhatsApp: `{phoneNumber, exists, chatId}`",
    tag: "chats",
    errors: [404, 409],
  }),
  v1({
    id: "listGroups",
    method: "GET",
    path: "/accounts/:accountId/groups",
    action: "accounts.groups",
    params: placed(CHAT_PARAMS.groups, ACCOUNT, "query"),
    summary: `Groups the account is in, with their participants: ${PAGED}`,
    tag: "chats",
    errors: [404, 409],
  }),
  v1({
    id: "createGroup",
    method: "POST",
    path: "/accounts/:accountId/groups",
    action: "accounts.createGroup",
    params: placed(CHAT_PARAMS.createGroup, ACCOUNT),
    // 200, not 201: a group has no GET of its own to name in a Location header.
    summary:
      "Create a group with the account as admin: `{group, failed}` (`failed`: participants left out, each with its reason)",
    tag: "chats",
    errors: [404, 409],
  }),
  v1({
    id: "addGroupParticipants",
    method: "POST",
    path: "/accounts/:accountId/groups/:groupId/participants",
    action: "accounts.addParticipants",
    params: placed(CHAT_PARAMS.addParticipants, GROUP),
    summary: "Add participants to a group: `{group, failed}`; an unknown group is 404",
    tag: "chats",
    errors: [404, 409],
  }),
  v1({
    id: "removeGroupParticipants",
    method: "DELETE",
    path: "/accounts/:accountId/groups/:groupId/participants",
    action: "accounts.removeParticipants",
    params: placed(CHAT_PARAMS.removeParticipants, GROUP),
    summary: "Remove participants (JSON body `{participants}`) from a group: `{group, failed}`",
    tag: "chats",
    errors: [404, 409],
  }),
];
