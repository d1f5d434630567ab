// `accounts`: the account registry (DESIGN.md, "Services"). Stateless, runs anywhere; validates
// tenancy (an account of another workspace is a 404, never a 403) and asks `session.*` for anything
// that touches a live engine. REST and Socket.IO reach accounts only through these actions.
import { createHash, randomBytes } from "node:crypto";
import { Errors, type Context, type Service, type ServiceSchema } from "moleculer";
import { mongoMixin, type MongoVars } from "../mixins/mongo.mixin.ts";
import {
  newAccountDoc,
  toAccountView,
  type AccountDoc,
  type AccountParams,
  type CreateAccountParams,
  type PairingCodeParams,
  type SimulateParams,
  type AccountView,
  type NewAccount,
  type QrView,
  type WorkspaceParams,
  WORKSPACE_ID_PATTERN,
} from "../src/accounts/types.ts";
import { callSession } from "../src/accounts/calls.ts";
import { ACCOUNT_PARAMS, validatorOf } from "../src/accounts/params.ts";
import { liveQrs, snapshotItems, type AccountsSnapshot } from "../src/accounts/snapshot.ts";
import { configOf } from "../src/config.ts";
import {
  InvalidStateError,
  NotFoundError,
  NotImplementedByEngine,
  ValidationError,
  WorkspaceUnavailableError,
  ERR_IDEMPOTENCY_MISMATCH,
  QuotaExceededError,
  createUnderWay,
} from "../src/errors.ts";
import { engineCapabilities, resolveEngine } from "../src/engines/index.ts";
import { KeyedSerial } from "../src/keyed-serial.ts";
import { AccountTally, QuotaBook } from "../src/quotas.ts";
import { AccountsRepo } from "../src/store/accounts-repo.ts";
import { QuotasRepo } from "../src/store/quotas-repo.ts";
import { TallyRepo } from "../src/store/tally-repo.ts";
import { GridFsAuthStore } from "../src/store/auth-store.ts";
import { SecretBox } from "../src/store/secrets.ts";
import { isDuplicateKey, retryTransient } from "../src/store/mongo.ts";
import { CURSOR_PATTERN, EventsRepo, seqOfCursor } from "../src/store/events-repo.ts";
import { eventsPage, openEventLog, type Broadcast, type EventsPage } from "../src/session/event-publisher.ts";
import { messagesMixin } from "../mixins/messages.mixin.ts";
import { chatsGatewayMixin } from "../mixins/chats.mixin.ts";

export type AccountsSettings = Record<string, never>;

interface AccountsVars extends MongoVars {
  repo: AccountsRepo;
  quotas: QuotaBook;
  /** Accounts per workspace, for the accounts quota. */
  tally: AccountTally;
  authStore: GridFsAuthStore;
  events: EventsRepo;
  /** `broadcast` of account events, each logged first (src/session/event-publisher.ts). */
  publish: Broadcast;
  /** Idempotent creates, one at a time per account id (the key's). */
  creates: KeyedSerial;
}

export interface ListParams extends WorkspaceParams {
  /** Accounts per page (a string from a query). @default all of them */
  limit?: string;
  cursor?: string;
}
export interface AccountsPage {
  items: AccountView[];
  /** The next page's cursor; null on the last page. */
  nextCursor: string | null;
}

export interface EventsParams extends WorkspaceParams {
  /** @default "0" */
  after?: string;
  /** @default 100 */
  limit?: number;
  /** Read a page stopped at a young gap again until it settles (a socket's replay). @default false */
  settle?: boolean;
}
interface AccountsMethods {
  ownAccount(params: AccountParams): Promise<AccountDoc>;
  viewOf(params: AccountParams): Promise<AccountView>;
  createAccount(ctx: Context<CreateAccountParams>, _id: string, startedAt: number): Promise<AccountView>;
  createUnplaced(ctx: Context, p: NewAccount): Promise<AccountView>;
  /** messagesMixin: deletes received media, idempotency and status records of an account. */
  forgetMessages(accountId: string): Promise<void>;
  /** messagesMixin: when the account was deleted, within IDEMPOTENCY_TTL_MS. */
  deletedAt(accountId: string): Promise<Date | null>;
}
type AccountsThis = Service<AccountsSettings> & AccountsVars & AccountsMethods;

const workspace = validatorOf(ACCOUNT_PARAMS.list);
const account = validatorOf(ACCOUNT_PARAMS.account);
const ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/** `bytes` as characters of ID_ALPHABET, one each. */
function charsOf(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += ID_ALPHABET[b % ID_ALPHABET.length];
  return out;
}

function randomChars(n: number): string {
  return charsOf(randomBytes(n));
}

/** The id of the account a create with Idempotency-Key `key` records in `workspaceId`: the same for
 * every repeat, another for every other key or workspace. */
function idempotentAccountId(workspaceId: string, key: string): string {
  const digest = createHash("sha256").update(`${workspaceId}\n${key}`).digest();
  return `acc_${charsOf(digest.subarray(0, 16))}`;
}

/** The key of an idempotent create already made account `accountId`, which `what` (422, nothing made). */
function keyReused(key: string, accountId: string, what: string): Errors.MoleculerClientError {
  return new Errors.MoleculerClientError(
    `Idempotency key '${key}' created account ${accountId}, which ${what}`,
    422,
    ERR_IDEMPOTENCY_MISMATCH,
    { field: "idempotencyKey", key, accountId },
  );
}

/** A repeat of a create with an Idempotency-Key: the account the first recorded, unless the repeat
 * asks for another name or engine (a key used for another account: 422, nothing created), or the
 * account is being deleted (409). */
function replayCreate(ctx: Context<CreateAccountParams>, doc: AccountDoc): AccountView {
  const { name, engine, idempotencyKey = "" } = ctx.params;
  if ((name !== undefined && name !== doc.name) || (engine !== undefined && engine !== doc.engine))
    throw keyReused(idempotencyKey, doc._id, `has name '${doc.name}' and engine ${doc.engine}`);
  if (doc.deletingAt)
    throw new InvalidStateError(`Account '${doc._id}', which this key created, is being deleted`, {
      accountId: doc._id,
    });
  const meta = ctx.meta as { $responseHeaders?: Record<string, string> };
  meta.$responseHeaders = { ...meta.$responseHeaders, "Idempotent-Replayed": "true" };
  return toAccountView(doc);
}

/** The call reached no worker, or its answer was lost (as opposed to a worker refusing it). */
function noWorkerAnswered(err: unknown): boolean {
  const e = err as Errors.MoleculerError;
  return (
    e instanceof Errors.ServiceNotFoundError ||
    e instanceof Errors.ServiceNotAvailableError ||
    e instanceof Errors.RequestTimeoutError ||
    // The worker left (crashed, or frozen past its heartbeats) with the call pending: it may have
    // recorded the account or not; the fallback's insert of the same id tells.
    e instanceof Errors.RequestRejectedError ||
    e instanceof WorkspaceUnavailableError
  );
}

/** Of a create's time, what its fallback keeps (recording the account here when no worker answered):
 * `session.create` gets the rest, so a worker too slow to answer leaves time to answer the client. */
const CREATE_FALLBACK_MS = 3000;

/** The timeout of a create's `session.create`: what is left of the caller's since `startedAt` (epoch
 * ms) less the fallback's share (none: none). */
function sessionCreateTimeout(ctx: Context, startedAt: number): number | undefined {
  const budget = Number(ctx.options?.timeout ?? 0);
  if (budget <= 2 * CREATE_FALLBACK_MS) return undefined;
  return Math.max(1, budget - (Date.now() - startedAt) - CREATE_FALLBACK_MS);
}

/** The account a call names (without the action's other params). */
function accountOf(p: AccountParams): AccountParams {
  return { workspaceId: p.workspaceId, accountId: p.accountId };
}

const AccountsService: ServiceSchema<AccountsSettings, AccountsMethods, AccountsVars> = {
  name: "accounts",
  // messagesMixin before mongoMixin: Moleculer runs the later mixin's `started` first, and the messages
  // mixin needs the connection.
  mixins: [chatsGatewayMixin(), messagesMixin(), mongoMixin()],

  settings: {},

  actions: {
    /** The workspace's event log after a cursor (GET /api/v1/events; a resuming socket). */
    events: {
      params: {
        workspaceId: { type: "string", pattern: WORKSPACE_ID_PATTERN },
        after: { type: "string", optional: true },
        limit: { type: "number", integer: true, min: 1, max: 1000, optional: true, convert: true },
        // A socket's replay (not REST): a page stopped at a gap is read again until the gap settles.
        settle: { type: "boolean", optional: true },
      },
      async handler(this: AccountsThis, ctx: Context<EventsParams>): Promise<EventsPage> {
        const after = seqOfCursor(ctx.params.after ?? "0");
        if (after === null)
          throw new ValidationError(`after must be an event cursor (${CURSOR_PATTERN.source})`, {
            field: "after",
            value: ctx.params.after,
          });
        const settle = ctx.params.settle === true;
        const page = await eventsPage(this.events, ctx.params.workspaceId, after, ctx.params.limit ?? 100, {
          settle,
        });
        // A socket resuming past the newest event (a database restored from a backup, a cursor of
        // another workspace) would take live events up to its cursor as already had: refused, so
        // that it gets live events without the log. REST polling answers an empty page (the contract).
        // The cursor's own event still stored (a client up to date, the usual reconnect) is one read.
        if (
          settle &&
          page.items.length === 0 &&
          after > 0 &&
          !(await this.events.has(ctx.params.workspaceId, after))
        ) {
          const newest = await this.events.top(ctx.params.workspaceId);
          if (after > newest)
            throw new ValidationError(`after is past the newest event of the workspace (${newest})`, {
              field: "after",
              value: ctx.params.after,
              newest: String(newest),
            });
        }
        return page;
      },
    },

    create: {
      params: validatorOf(ACCOUNT_PARAMS.create),
      handler(this: AccountsThis, ctx: Context<CreateAccountParams>): Promise<AccountView> {
        const startedAt = Date.now();
        const { workspaceId, idempotencyKey: key } = ctx.params;
        resolveEngine(ctx.params.engine ?? configOf(this.broker).engine);
        if (!key) return this.createAccount(ctx, `acc_${randomChars(16)}`, startedAt);
        // With a key the id is the key's: a repeat finds the account. Repeats arriving together here run
        // one after another; two at once on different gateways meet on the account's `_id`.
        const id = idempotentAccountId(workspaceId, key);
        return this.creates.run(id, async () => {
          const earlier = await this.repo.get(workspaceId, id);
          if (earlier) return replayCreate(ctx, earlier);
          const deletedAt = await this.deletedAt(id);
          if (deletedAt) throw keyReused(key, id, `was deleted at ${deletedAt.toISOString()}`);
          return this.createAccount(ctx, id, startedAt);
        });
      },
    },

    /** All accounts, or a page of them with `limit` (then `nextCursor` names the next page). */
    list: {
      params: { ...workspace, limit: { ...(workspace.limit as object), convert: true } },
      async handler(this: AccountsThis, ctx: Context<ListParams>): Promise<AccountsPage> {
        const { workspaceId, limit, cursor } = ctx.params;
        // Absent or null (the validator lets an optional field be either): all of them, not a page of 0.
        const page = await this.repo.page(
          workspaceId,
          limit == null ? undefined : Number(limit),
          cursor ?? undefined,
        );
        return { items: page.docs.map(toAccountView), nextCursor: page.nextCursor };
      },
    },

    get: {
      params: account,
      async handler(this: AccountsThis, ctx: Context<AccountParams>): Promise<AccountView> {
        return this.viewOf(ctx.params);
      },
    },

    /** An account by id alone, across workspaces: the operator's console (`qr <accountId>`). No REST
     * alias or socket call reaches it; tenants always go through `get` with their workspace. */
    lookup: {
      params: { accountId: account.accountId },
      async handler(this: AccountsThis, ctx: Context<{ accountId: string }>): Promise<AccountView> {
        const doc = await this.repo.byId(ctx.params.accountId);
        if (!doc) throw new NotFoundError("Account", ctx.params.accountId);
        return toAccountView(doc);
      },
    },

    qr: {
      params: account,
      async handler(this: AccountsThis, ctx: Context<AccountParams>): Promise<QrView> {
        // No read here: session.qr answers only for an account of this workspace (from the owner's
        // runtime, else the account record; another workspace's account is a 404 there). The hot
        // path of GET …/qr (bench/routing).
        return callSession(ctx, "qr", accountOf(ctx.params));
      },
    },

    pairingCode: {
      params: validatorOf(ACCOUNT_PARAMS.pairingCode),
      async handler(this: AccountsThis, ctx: Context<PairingCodeParams>): Promise<{ code: string }> {
        await this.ownAccount(ctx.params);
        return callSession(ctx, "pairingCode", {
          ...accountOf(ctx.params),
          phoneNumber: ctx.params.phoneNumber,
        });
      },
    },

    /** Stop + start: a linked account comes back `connected` from its saved auth state, with no QR. */
    restart: {
      params: account,
      async handler(this: AccountsThis, ctx: Context<AccountParams>): Promise<AccountView> {
        const doc = await this.ownAccount(ctx.params);
        // An account a delete has begun on has no auth state left to save to: it can only be deleted.
        if (doc.deletingAt || !(await this.repo.setDesiredState(doc.workspaceId, doc._id, "running"))) {
          // Deleted meanwhile (not only begun): no such account.
          await this.ownAccount(ctx.params);
          throw new InvalidStateError(
            `Account '${doc._id}' is being deleted (a delete did not finish): delete it again`,
            { accountId: doc._id },
          );
        }
        await callSession(ctx, "stop", accountOf(ctx.params));
        await callSession(ctx, "start", accountOf(ctx.params));
        return this.viewOf(ctx.params);
      },
    },

    logout: {
      params: account,
      async handler(this: AccountsThis, ctx: Context<AccountParams>): Promise<AccountView> {
        await this.ownAccount(ctx.params);
        // The owner records logged_out wanted stopped (nothing more to write here: a restart that came
        // right after it would be undone).
        await callSession(ctx, "logout", accountOf(ctx.params));
        return this.viewOf(ctx.params);
      },
    },

    /** Stops the engine, deletes the auth state, what messaging kept (media, idempotency and status
     * records) and the document, then broadcasts account.deleted. */
    remove: {
      params: account,
      async handler(this: AccountsThis, ctx: Context<AccountParams>): Promise<{ id: string; deleted: true }> {
        const doc = await this.ownAccount(ctx.params);
        await this.repo.markDeleting(doc.workspaceId, doc._id, new Date());
        try {
          await callSession(ctx, "stop", accountOf(ctx.params));
        } catch (err) {
          // An engine we could not reach is fenced out by its next write: a status matches no document,
          // and its auth state's save meets the retired marker below (it would store the credentials again).
          this.logger.warn(`accounts.remove ${doc._id}: session.stop failed (${(err as Error).message})`);
        }
        // Idempotent (a replace and deletes): tried again when the database is busy, rather than leave the
        // account being deleted until someone deletes it again.
        await retryTransient(() => this.authStore.retire(doc.sessionId));
        await this.forgetMessages(doc._id);
        // Counted out, and announced, by the remove that deleted it (of two at once, one). One that
        // cannot tell (its delete's answer lost) announces it too: a second account.deleted (another
        // remove deleted it) is harmless, a missing one is not; but it leaves the tally one high.
        const deleted = await this.repo.delete(doc.workspaceId, doc._id);
        if (deleted === "deleted") {
          // Left one high, the tally is corrected by counting when the workspace reaches its quota.
          await this.tally.removed(doc.workspaceId).catch((err: Error) => {
            this.logger.warn(
              `accounts.remove ${doc._id}: not counted out of ${doc.workspaceId} (${err.message})`,
            );
          });
        }
        if (deleted !== "gone") {
          await this.publish("account.deleted", {
            accountId: doc._id,
            workspaceId: doc.workspaceId,
            sessionId: doc.sessionId,
          });
        }
        return { id: doc._id, deleted: true };
      },
    },

    simulate: {
      params: validatorOf(ACCOUNT_PARAMS.simulate),
      async handler(this: AccountsThis, ctx: Context<SimulateParams>): Promise<AccountView> {
        const doc = await this.ownAccount(ctx.params);
        if (!engineCapabilities(doc.engine).simulate) {
          throw new NotImplementedByEngine(doc.engine, `simulate.${ctx.params.action}`);
        }
        const {
          action,
          phoneNumber: phone,
          from,
          text,
          type,
          author,
          quotedId,
          media,
          location,
          emoji,
        } = ctx.params;
        await callSession(ctx, "simulate", {
          ...accountOf(ctx.params),
          ...{ action, phoneNumber: phone, from, text, type, author, quotedId, media, location, emoji },
        });
        return this.viewOf(ctx.params);
      },
    },

    /** Every account of the workspace with its current QR (what a dashboard shows on connect). */
    snapshot: {
      params: { ...workspace, withCursor: { type: "boolean", optional: true } },
      async handler(
        this: AccountsThis,
        ctx: Context<WorkspaceParams & { withCursor?: boolean }>,
      ): Promise<AccountsSnapshot> {
        const { workspaceId, withCursor } = ctx.params;
        // Read before the accounts: a client resuming from it gets everything after the snapshot.
        const top = withCursor ? await this.events.top(workspaceId) : 0;
        const docs = await this.repo.list(workspaceId);
        const items = snapshotItems(docs, await liveQrs(ctx, docs, this.logger));
        return top > 0 ? { items, cursor: String(top) } : { items };
      },
    },
  },

  methods: {
    async ownAccount(this: AccountsThis, params: AccountParams): Promise<AccountDoc> {
      const doc = await this.repo.get(params.workspaceId, params.accountId);
      if (!doc) throw new NotFoundError("Account", params.accountId);
      return doc;
    },

    async viewOf(this: AccountsThis, params: AccountParams): Promise<AccountView> {
      return toAccountView(await this.ownAccount(params));
    },

    /** Records account `_id` on the workspace's owner, which starts it (`create`). */
    async createAccount(
      this: AccountsThis,
      ctx: Context<CreateAccountParams>,
      _id: string,
      startedAt: number,
    ): Promise<AccountView> {
      const ws = ctx.params.workspaceId;
      const engine = ctx.params.engine ?? configOf(this.broker).engine;
      // Read only when it can matter: never for a workspace's first account (see reserve).
      const first = await this.tally
        .reserve(ws, async () => (await this.quotas.of(ws)).accounts, _id)
        .catch(async (err: unknown) => {
          // At the quota: a repeat of a key whose first create, through another gateway, holds the
          // last place is answered as a repeat, not refused the account its key made; while that
          // create may still be recording it (its place reserved under the key's id), as the same
          // race below the quota is: try again.
          if (!ctx.params.idempotencyKey || !(err instanceof QuotaExceededError)) throw err;
          const [stored, recording] = await Promise.all([
            this.repo.get(ws, _id),
            this.tally.mayBeRecording(ws, _id),
          ]);
          if (stored) return stored;
          if (recording) throw createUnderWay(_id);
          throw err;
        });
      if (typeof first === "object") return replayCreate(ctx, first);
      const params: NewAccount = {
        workspaceId: ws,
        accountId: _id,
        sessionId: `${engine}_${ws}_${Math.floor(Date.now() / 1000)}_${randomChars(8)}`,
        name: ctx.params.name ?? `Account ${_id.slice(-4)}`,
        engine,
        ...(first ? { firstInWorkspace: true } : {}),
      };
      try {
        // Recorded and started by the workspace's owner, stamped with its fence: no claim to write.
        const timeout = sessionCreateTimeout(ctx, startedAt);
        return await callSession(ctx, "create", params, timeout ? { timeout } : undefined).catch(
          (err: unknown) => {
            if (!noWorkerAnswered(err)) throw err;
            this.logger.warn(`accounts.create ${_id}: no worker recorded it (${(err as Error).message})`);
            return this.createUnplaced(ctx, params);
          },
        );
      } catch (err) {
        // Counted out again unless this create recorded it after all (an answer lost on the way), or
        // the read that would tell failed too (a count left one high is corrected at the quota).
        const stored = await this.repo.get(ws, _id).catch(() => undefined);
        if (stored?.sessionId === params.sessionId) return toAccountView(stored);
        if (stored !== undefined)
          await this.tally.release(ws, _id).catch((e: Error) => {
            this.logger.warn(`accounts.create ${_id}: not counted out of ${ws} (${e.message})`);
          });
        // A repeat of its idempotency key, through another gateway, recorded it first.
        if (ctx.params.idempotencyKey && stored) return replayCreate(ctx, stored);
        throw err;
      }
    },

    /**
     * `create` when no worker answered: the account is recorded here, unplaced, wanted running, and
     * a worker is asked to start it; failing that, a reconciler starts it when a worker can. A worker
     * that did record it before its answer was lost wins: the stored account is returned.
     */
    async createUnplaced(this: AccountsThis, ctx: Context, p: NewAccount): Promise<AccountView> {
      // Stamped now, not when the create began (its `session.create` may have taken seconds): a list
      // traversal whose cursor passed the accounts created meanwhile would never see it.
      const doc = newAccountDoc(p, new Date(), null);
      try {
        await this.repo.insert(doc);
      } catch (err) {
        // This create's own, recorded by a worker whose answer was lost; another's is for the caller.
        const stored = isDuplicateKey(err) ? await this.repo.get(p.workspaceId, p.accountId) : null;
        if (stored?.sessionId === p.sessionId) return toAccountView(stored);
        throw err;
      }
      const view = toAccountView(doc);
      // Recorded (and counted): a failed announcement must not fail the create, whose retry would
      // record a second account.
      await Promise.resolve(this.publish("account.created", { account: view })).catch((err: Error) =>
        this.logger.error(`accounts.create ${doc._id}: account.created not published (${err.message})`),
      );
      try {
        await callSession(ctx, "start", { workspaceId: doc.workspaceId, accountId: doc._id });
      } catch (err) {
        this.logger.warn(`accounts.create ${doc._id}: session.start failed (${(err as Error).message})`);
      }
      return view;
    },
  },

  async started(this: AccountsThis) {
    this.repo = new AccountsRepo(this.db);
    this.creates = new KeyedSerial();
    this.quotas = new QuotaBook(new QuotasRepo(this.db), configOf(this.broker).quotas);
    const tallies = new TallyRepo(this.db);
    // Before the first create: workspaces with accounts from before tallies get their count.
    await tallies.seedOnce();
    this.tally = new AccountTally(tallies, (ws) => this.repo.countIn(ws));
    this.authStore = new GridFsAuthStore(this.db, SecretBox.fromConfig(configOf(this.broker)));
    ({ events: this.events, publish: this.publish } = await openEventLog(
      this.db,
      (e, p) => this.broker.broadcast(e, p),
      this.logger,
      configOf(this.broker).eventsRetentionMs,
    ));
  },
};

// Typed with its own vars and methods above; exported as a plain schema so any broker takes it.
export default AccountsService as unknown as ServiceSchema<AccountsSettings>;
