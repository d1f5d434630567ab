// The chat, contact and group actions (issue #15) on both sides of the bus, from one table
// (src/accounts/chat-params.ts):
//   chatsMixin()        on `session`: runs the call on the account's engine, on the workspace's owner
//                       (routed by WorkspaceShard and forwarded by the host's `onOwner`, like every
//                       session.* action; the owner's account lookup is the tenancy check → 404);
//   chatsGatewayMixin() on `accounts`: what REST and socket calls reach; checks what the param rules
//                       cannot, then calls `session.<same name>`.
import type { Context, Service, ServiceSchema } from "moleculer";
import {
  CHAT_ACTIONS,
  CHAT_PARAMS,
  checkedParticipants,
  pageRequestOf,
  type ChatAction,
  type ChatActions,
} from "../src/accounts/chat-params.ts";
import { validatorOf } from "../src/accounts/params.ts";
import type { AccountDoc, AccountParams } from "../src/accounts/types.ts";
import type { Engine } from "../src/engines/base.ts";
import { WORKSPACE_SHARD } from "../src/placement/strategy.ts";
import type { SessionRuntime } from "../src/session/runtime.ts";

type ParamsOf<A extends ChatAction> = ChatActions[A][0];
type ResultOf<A extends ChatAction> = ChatActions[A][1];

/** What the host session service gives the mixin. */
interface SessionHost extends Service {
  runtime: SessionRuntime;
  onOwner<T>(ctx: Context<AccountParams>, local: (doc: AccountDoc) => Promise<T>): Promise<T>;
}

/** Each action as a call of the engine's directory. */
const ENGINE_CALLS: { [A in ChatAction]: (engine: Engine, p: ParamsOf<A>) => Promise<ResultOf<A>> } = {
  chats: (e, p) => e.listChats(pageRequestOf(p)),
  chatMessages: (e, p) => e.chatMessages(p.chatId, pageRequestOf(p)),
  markRead: async (e, p) => {
    await e.markRead(p.chatId);
    return { chatId: p.chatId, read: true };
  },
  sendTyping: async (e, p) => {
    await e.sendTyping(p.chatId);
    return { chatId: p.chatId, typing: true };
  },
  contacts: (e, p) => e.listContacts(pageRequestOf(p)),
  numberExists: (e, p) => e.numberExists(p.phone),
  groups: (e, p) => e.listGroups(pageRequestOf(p)),
  createGroup: (e, p) => e.createGroup({ name: p.name, participants: checkedParticipants(p.participants) }),
  addParticipants: (e, p) => e.addParticipants(p.groupId, checkedParticipants(p.participants)),
  removeParticipants: (e, p) => e.removeParticipants(p.groupId, checkedParticipants(p.participants)),
};

function runOn<A extends ChatAction>(engine: Engine, action: A, params: ParamsOf<A>): Promise<ResultOf<A>> {
  return ENGINE_CALLS[action](engine, params);
}

export function chatsMixin(): Partial<ServiceSchema> {
  const actions: ServiceSchema["actions"] = {};
  for (const action of CHAT_ACTIONS) {
    actions[action] = {
      strategy: WORKSPACE_SHARD,
      params: validatorOf(CHAT_PARAMS[action]),
      async handler(this: Service, ctx: Context<ParamsOf<typeof action>>) {
        const host = this as SessionHost; // the session service this mixin is made for
        return host.onOwner(ctx, async (doc) => {
          const { result } = await host.runtime.drive(doc._id, (engine) => runOn(engine, action, ctx.params));
          return result;
        });
      },
    };
  }
  return { actions };
}

export function chatsGatewayMixin(): Partial<ServiceSchema> {
  const actions: ServiceSchema["actions"] = {};
  for (const action of CHAT_ACTIONS) {
    actions[action] = {
      params: validatorOf(CHAT_PARAMS[action]),
      async handler(ctx: Context<ParamsOf<typeof action>>) {
        // Refused here, before the call crosses the bus to the owner.
        const p = ctx.params as Partial<{ participants: string[] }>;
        if (p.participants) checkedParticipants(p.participants);
        return ctx.call(`session.${action}`, ctx.params);
      },
    };
  }
  return { actions };
}
