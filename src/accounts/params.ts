// The params of each account action, defined once. `accounts.*` and `session.*` validate with them
// (validatorOf), and the REST route table places them in the path or body (src/gateway/routes.ts),
// which also generates the OpenAPI document, so the three cannot drift.
import type { ActionParams } from "moleculer";
import { SIMULATE_ACTIONS, WORKSPACE_ID_PATTERN } from "./types.ts";

/** A param rule: the subset of fastest-validator rules we use, convertible to JSON Schema. */
export type Rule = (
  | { type: "string"; min?: number; max?: number; pattern?: RegExp }
  | { type: "enum"; values: readonly string[] }
  | { type: "number"; integer?: boolean; min?: number; max?: number }
  | { type: "boolean" }
  | { type: "array"; items: { type: "enum"; values: readonly string[] }; min?: number; max?: number }
) & { optional?: boolean; description?: string };

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
  },
  list: {},
  account: { accountId },
  pairingCode: { accountId, phoneNumber },
  sendText: { accountId, to: chatId("Recipient (phone number or chat id)"), text },
  simulate: {
    accountId,
    action: { type: "enum", values: SIMULATE_ACTIONS, description: "What the simulated phone does" },
    phoneNumber: { ...phoneNumber, optional: true },
    from: { ...chatId("Sender (phone number or chat id)"), optional: true },
    text: { ...text, optional: true },
  },
} as const satisfies Record<string, Rules>;

/** A fastest-validator schema of `rules` plus the workspace every account call carries. */
export function validatorOf(rules: Rules): ActionParams {
  const schema: Record<string, unknown> = { workspaceId: { type: "string", pattern: WORKSPACE_ID_PATTERN } };
  for (const [name, rule] of Object.entries(rules)) {
    const { description: _description, ...fv } = rule;
    schema[name] = fv;
  }
  return schema as ActionParams;
}
