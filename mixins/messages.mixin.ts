// The messaging actions of `accounts` (POST …/messages, GET …/messages/:messageId(/media), socket
// calls): a send is checked here, on the gateway side (src/messages/prepare.ts), and then made by the
// account's owner (`session.sendMessage`); a message's status is read from its record, and the bytes of
// a received media message from `incoming_media`, streamed to the gateway. What an account leaves
// here is deleted with it (`forgetMessages`). Uses the host service's
// `db` (mongoMixin, listed after this mixin so that it connects first) and `ownAccount` (tenancy).
import type { Readable } from "node:stream";
import type { Context, Service, ServiceSchema } from "moleculer";
import type { AccountDoc, AccountParams, MessageParams, SendTextParams } from "../src/accounts/types.ts";
import { callSession } from "../src/accounts/calls.ts";
import { ACCOUNT_PARAMS, validatorOf } from "../src/accounts/params.ts";
import { configOf } from "../src/config.ts";
import { NotFoundError } from "../src/errors.ts";
import { prepareSend, type PrepareDeps, type SendMessageParams } from "../src/messages/prepare.ts";
import type { SendResult } from "../src/messages/types.ts";
import { AddressPolicy } from "../src/net/address-guard.ts";
import { IdempotencyRepo } from "../src/store/idempotency-repo.ts";
import {
  MessageStatusRepo,
  messageStatusView,
  type MessageStatusView,
} from "../src/store/message-status-repo.ts";
import { OutboundMediaStore } from "../src/store/outbound-media.ts";
import { contentDisposition, mediaContentType } from "../src/messages/incoming.ts";
import { IncomingMediaStore } from "../src/store/incoming-media.ts";
import { retryTransient } from "../src/store/mongo.ts";
import type { MongoVars } from "./mongo.mixin.ts";

/** What the media action tells moleculer-web about its answer. */
interface MediaMeta {
  $responseType?: string;
  $responseHeaders?: Record<string, string>;
}

interface MessagesThis extends Service, Partial<MongoVars> {
  sending: PrepareDeps;
  statuses: MessageStatusRepo;
  incomingMedia: IncomingMediaStore;
  /** The host service's tenancy check: the account of this workspace, or NotFoundError. */
  ownAccount(params: AccountParams): Promise<AccountDoc>;
  sendMessage(ctx: Context, p: SendMessageParams): Promise<SendResult>;
}

export function messagesMixin(): Partial<ServiceSchema> {
  const mixin: Partial<ServiceSchema<Record<string, unknown>, object, object, MessagesThis>> = {
    actions: {
      /** A text message: `sendMessage` of type text (kept for socket clients and the REPL). */
      sendText: {
        params: validatorOf(ACCOUNT_PARAMS.sendText),
        async handler(this: MessagesThis, ctx: Context<SendTextParams>): Promise<SendResult> {
          const { workspaceId, accountId, to, text } = ctx.params;
          return this.sendMessage(ctx, { workspaceId, accountId, to, text });
        },
      },

      sendMessage: {
        params: validatorOf(ACCOUNT_PARAMS.sendMessage),
        async handler(this: MessagesThis, ctx: Context<SendMessageParams>): Promise<SendResult> {
          return this.sendMessage(ctx, ctx.params);
        },
      },

      /** The last known status of a message the account sent. */
      message: {
        params: validatorOf(ACCOUNT_PARAMS.message),
        async handler(this: MessagesThis, ctx: Context<MessageParams>): Promise<MessageStatusView> {
          const { workspaceId, accountId, messageId } = ctx.params;
          await this.ownAccount(ctx.params);
          const doc = await this.statuses.get(workspaceId, accountId, messageId);
          if (!doc) throw new NotFoundError("Message", messageId);
          return messageStatusView(doc);
        },
      },

      /** The bytes of a received media message, streamed with its media type (moleculer-web sends a
       * stream result as the body, with `$responseType` and `$responseHeaders` of the meta). */
      media: {
        params: validatorOf(ACCOUNT_PARAMS.message),
        async handler(this: MessagesThis, ctx: Context<MessageParams, MediaMeta>): Promise<Readable> {
          const { workspaceId, accountId, messageId } = ctx.params;
          await this.ownAccount(ctx.params);
          const media = await this.incomingMedia.open(workspaceId, accountId, messageId);
          if (!media) throw new NotFoundError("Media", messageId);
          ctx.meta.$responseType = mediaContentType(media.mimetype);
          ctx.meta.$responseHeaders = {
            "Content-Length": String(media.size),
            // Never rendered in the gateway's origin: a received file is whatever the sender made it.
            "Content-Disposition": contentDisposition(media.filename),
          };
          return media.stream;
        },
      },
    },

    methods: {
      /** Checked here (4xx before anything is stored or sent), then sent by the account's owner. */
      async sendMessage(this: MessagesThis, ctx: Context, p: SendMessageParams): Promise<SendResult> {
        await this.ownAccount(p);
        const prepared = await prepareSend(p, this.sending);
        if ("answer" in prepared) return prepared.answer;
        return callSession(ctx, "sendMessage", prepared.owner);
      },

      /** Deletes what messaging kept of an account: received media, idempotency and status records;
       * marks it deleted (IdempotencyRepo.markDeleted). Before its document goes. */
      async forgetMessages(this: MessagesThis, accountId: string): Promise<void> {
        await Promise.all([
          retryTransient(() => this.sending.idempotency.markDeleted(accountId)),
          retryTransient(() => this.incomingMedia.deleteAccount(accountId)),
          retryTransient(() => this.sending.idempotency.deleteAccount(accountId)),
          retryTransient(() => this.statuses.deleteAccount(accountId)),
        ]);
      },

      /** When account `accountId` was deleted, within IDEMPOTENCY_TTL_MS (an idempotent create's repeat). */
      async deletedAt(this: MessagesThis, accountId: string): Promise<Date | null> {
        return this.sending.idempotency.deletedAt(accountId);
      },
    },

    async started(this: MessagesThis) {
      if (!this.db) throw new Error("messagesMixin needs mongoMixin listed after it (no database yet)");
      const cfg = configOf(this.broker);
      this.statuses = new MessageStatusRepo(this.db, cfg.eventsRetentionMs);
      this.incomingMedia = new IncomingMediaStore(this.db, cfg.incomingMediaRetentionMs);
      this.sending = {
        idempotency: new IdempotencyRepo(this.db, cfg.idempotencyTtlMs),
        media: new OutboundMediaStore(this.db),
        policy: new AddressPolicy(cfg.webhookAllowPrivate),
        mediaMaxBytes: cfg.mediaMaxBytes,
      };
    },
  };
  // Typed with its own `this` above; returned as a plain mixin so any service takes it.
  return mixin as Partial<ServiceSchema>;
}
