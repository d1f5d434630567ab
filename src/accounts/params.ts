// The params of each account action, defined once. `accounts.*` and `session.*` validate with them
// (validatorOf), and the REST route table places them in the path or body (src/gateway/routes.ts),
// which also generates the OpenAPI document, so the three cannot drift.
import type { ActionParams } from "moleculer";
import { INCOMING_TYPES } from "../messages/incoming.ts";
import type { SimulatedIncoming } from "../engines/base.ts";
import { MESSAGE_TYPES } from "../messages/types.ts";
import { decodeBase64, invalidField } from "../messages/validate.ts";
import { SIMULATE_ACTIONS, WORKSPACE_ID_PATTERN, type SimulateParams } from "./types.ts";

/** A param rule: the subset of fastest-validator rules we use, convertible to JSON Schema. */
export type Rule = (
  | { type: "string"; min?: number; max?: number; pattern?: RegExp; empty?: boolean }
  | { type: "enum"; values: readonly string[] }
  | { type: "number"; integer?: boolean; min?: number; max?: number }
  | { type: "boolean" }
  | {
      type: "array";
      items: { type: "enum"; values: readonly string[] } | { type: "string"; min?: number; max?: number };
      min?: number;
      max?: number;
    }
  /** Any object; its fields are checked by the action (the JSON Schema documents them). */
  | { type: "object"; schema: Record<string, unknown> }
) & {
  optional?: boolean;
  description?: string;
  /** Values listed in the documentation, checked by the action itself (so that it can refuse others
   * with an error type of its own). */
  documented?: readonly string[];
};

/** The fastest-validator rule of a Rule: what only the documentation uses removed. */
export function fastestRule(rule: Rule): Record<string, unknown> {
  const { description: _d, documented: _v, ...fv } = rule as Rule & { schema?: unknown };
  if (fv.type === "object") delete (fv as { schema?: unknown }).schema;
  return fv;
}

export type Rules = Record<string, Rule>;

/** Ids of accounts, webhook endpoints and workspaces: 1–64 characters of [A-Za-z0-9_-]. */
export const ID_PATTERN = WORKSPACE_ID_PATTERN;
const PHONE_PATTERN = /^\+?[0-9]{6,16}$/;
/** WhatsApp Web's own cap is far higher; the JSON body limit (64 kB) leaves room for this. */
export const TEXT_MAX = 4096;

export const workspaceIdRule: Rule = {
  type: "string",
  pattern: WORKSPACE_ID_PATTERN,
  description: "Workspace id",
};
const accountId: Rule = { type: "string", pattern: ID_PATTERN, description: "Account id" };
const phoneNumber: Rule = {
  type: "string",
  pattern: PHONE_PATTERN,
  description: "Phone number in international format, digits only (a leading + is allowed)",
};
const text: Rule = { type: "string", min: 1, max: TEXT_MAX, description: "Message text" };
const locationRule: Rule = {
  type: "object",
  optional: true,
  description: "Type `location`: `{latitude, longitude, name?, address?}`",
  schema: {
    type: "object",
    required: ["latitude", "longitude"],
    properties: {
      latitude: { type: "number", minimum: -90, maximum: 90 },
      longitude: { type: "number", minimum: -180, maximum: 180 },
      name: { type: "string" },
      address: { type: "string" },
    },
  },
};
const chatId = (description: string): Rule => ({ type: "string", min: 1, max: 128, description });

/** Params of each account action, beside the `workspaceId` every call carries. */
export const ACCOUNT_PARAMS = {
  create: {
    name: { type: "string", min: 1, max: 100, optional: true, description: "Display name" },
    engine: {
      type: "string",
      pattern: /^[a-z][a-z0-9_-]{0,31}$/,
      optional: true,
      description: "Engine (`webjs` or `simulated`); the node's ENGINE when absent",
    },
    idempotencyKey: {
      type: "string",
      min: 1,
      max: 128,
      optional: true,
      description: "One account per key and workspace: a repeat answers the account the first created",
    },
  },
  list: {
    // Strings: query values reach the gateway's check unconverted (accounts.list converts).
    limit: {
      type: "string",
      pattern: /^([1-9][0-9]{0,2}|1000)$/,
      optional: true,
      description: "Accounts per page, 1–1000 (all of them when absent)",
    },
    cursor: {
      type: "string",
      pattern: /^[A-Za-z0-9_-]{1,200}$/,
      optional: true,
      description: "`nextCursor` of the previous page",
    },
  },
  account: { accountId },
  pairingCode: { accountId, phoneNumber },
  sendText: { accountId, to: chatId("Recipient (phone number or chat id)"), text },
  sendMessage: {
    accountId,
    to: chatId("Recipient: a phone number (international format) or a chat id (`…@c.us`, `…@g.us`)"),
    type: {
      type: "string",
      max: 32,
      optional: true,
      documented: MESSAGE_TYPES,
      description: "Message type (`text` when absent)",
    },
    text: { ...text, optional: true, description: "Text (type `text`)" },
    media: {
      type: "object",
      optional: true,
      description:
        "The file (image, document, audio, video): `{url}` (fetched by the account's node) or `{base64, mimetype, filename?}`; at most MEDIA_MAX_BYTES",
      schema: {
        type: "object",
        properties: {
          url: { type: "string", format: "uri" },
          base64: { type: "string", contentEncoding: "base64" },
          mimetype: { type: "string" },
          filename: { type: "string" },
        },
      },
    },
    caption: {
      type: "string",
      max: 1024,
      optional: true,
      description: "Caption of an image, video or document",
    },
    replyTo: { ...chatId("Id of the message quoted (or, for a reaction, reacted to)"), optional: true },
    mentions: {
      type: "array",
      items: { type: "string", min: 1, max: 128 },
      max: 50,
      optional: true,
      description: "Phone numbers or chat ids of people mentioned",
    },
    location: locationRule,
    contact: {
      type: "object",
      optional: true,
      description: "Type `contact`: `{name, phoneNumber}` (sent as a vCard)",
      schema: {
        type: "object",
        required: ["name", "phoneNumber"],
        properties: { name: { type: "string" }, phoneNumber: { type: "string" } },
      },
    },
    emoji: {
      type: "string",
      max: 16,
      empty: true,
      optional: true,
      description: 'Type `reaction`: the emoji ("" takes a reaction back)',
    },
    clientId: {
      type: "string",
      min: 1,
      max: 128,
      optional: true,
      description: "Idempotency key in the body (the `Idempotency-Key` header wins)",
    },
    idempotencyKey: {
      type: "string",
      min: 1,
      max: 128,
      optional: true,
      description: "At most one send per key and account within 24 h; a repeat answers the first result",
    },
  },
  message: { accountId, messageId: chatId("WhatsApp message id") },
  simulate: {
    accountId,
    action: { type: "enum", values: SIMULATE_ACTIONS, description: "What the simulated phone does" },
    phoneNumber: { ...phoneNumber, optional: true },
    from: { ...chatId("Sender (phone number or chat id; a group's `…@g.us` with `author`)"), optional: true },
    text: {
      type: "string",
      max: TEXT_MAX,
      empty: true,
      optional: true,
      description: "Message text, or the caption of a media message",
    },
    type: {
      type: "enum",
      values: INCOMING_TYPES,
      optional: true,
      description: "Type of the message that arrives (`text`, or `document` with `media`, when absent)",
    },
    author: { ...chatId("Group messages: the member who wrote it"), optional: true },
    quotedId: { ...chatId("Id of the message it quotes (or reacts to)"), optional: true },
    media: {
      type: "object",
      optional: true,
      description: "The file that arrives: `{base64, mimetype, filename?}` (within the 64 kB body limit)",
      schema: {
        type: "object",
        required: ["base64", "mimetype"],
        properties: {
          base64: { type: "string", contentEncoding: "base64" },
          mimetype: { type: "string" },
          filename: { type: "string" },
        },
      },
    },
    location: locationRule,
    emoji: {
      type: "string",
      max: 16,
      empty: true,
      optional: true,
      description: "Type `reaction`: the emoji",
    },
  },
} as const satisfies Record<string, Rules>;

/** A fastest-validator schema of `rules` plus the workspace every account call carries. */
export function validatorOf(rules: Rules): ActionParams {
  const schema: Record<string, unknown> = { workspaceId: { type: "string", pattern: WORKSPACE_ID_PATTERN } };
  for (const [name, rule] of Object.entries(rules)) {
    schema[name] = fastestRule(rule);
  }
  return schema as ActionParams;
}

/** What a simulated incoming message carries beyond `from` and `text` (session.simulate `message`);
 * its media decoded (INVALID_MEDIA when not base64). The 64 kB body limit bounds the file. */
export function simulatedIncomingOf(p: SimulateParams): SimulatedIncoming {
  const extra: SimulatedIncoming = {};
  if (p.type) extra.type = p.type;
  if (p.author) extra.author = p.author;
  if (p.quotedId) extra.quotedId = p.quotedId;
  if (p.location) extra.location = p.location;
  if (p.emoji !== undefined) extra.emoji = p.emoji;
  if (p.media) {
    const { base64, mimetype, filename } = p.media as Partial<Record<string, unknown>>;
    // The rule checks only that media is an object: its fields are checked here.
    if (typeof base64 !== "string" || typeof mimetype !== "string")
      throw invalidField("media", "media needs base64 and mimetype (strings)");
    if (filename !== undefined && typeof filename !== "string")
      throw invalidField("media.filename", "media.filename must be a string");
    const { data } = decodeBase64(base64, Number.MAX_SAFE_INTEGER);
    extra.media = { data, mimetype, filename };
  }
  return extra;
}
