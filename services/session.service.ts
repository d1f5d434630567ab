// `session`: the live engines of this worker (DESIGN.md, "Services"). Every action takes
// {workspaceId, accountId} and is routed by workspace (WorkspaceShard); the session runtime
// (src/session/runtime.ts) does the work, under the node's placement (src/placement/worker-node.ts),
// which forwards a call that reached a node not owning its workspace. Creates the `cluster` service
// beside itself: every worker answers the operators' cluster.* calls.
import type { Context, Service, ServiceSchema } from "moleculer";
import { chatsMixin } from "../mixins/chats.mixin.ts";
import { mongoMixin, type MongoVars } from "../mixins/mongo.mixin.ts";
import ClusterService from "./cluster.service.ts";
import {
  WORKSPACE_ID_PATTERN,
  newAccountDoc,
  toAccountView,
  type AccountDoc,
  type AccountView,
  type NewAccount,
  type AccountParams,
  type PairingCodeParams,
  type QrView,
  type SendTextParams,
  type SessionStatusResult,
  type SimulateParams,
} from "../src/accounts/types.ts";
import { ACCOUNT_PARAMS, validatorOf } from "../src/accounts/params.ts";
import { warmUpQrRendering } from "../src/qr/qr-image.ts";
import { configOf, nodeProfileDir } from "../src/config.ts";
import { resolveEngine } from "../src/engines/index.ts";
import { NotFoundError } from "../src/errors.ts";
import { NOT_PLACED } from "../src/placement/fence.ts";
import { WorkerNode } from "../src/placement/worker-node.ts";
import { SessionRuntime, type LocalSessionInfo } from "../src/session/runtime.ts";
import { WORKSPACE_SHARD } from "../src/placement/strategy.ts";
import { AccountsRepo } from "../src/store/accounts-repo.ts";
import { GridFsAuthStore } from "../src/store/auth-store.ts";
import { isDuplicateKey } from "../src/store/mongo.ts";
import { SecretBox } from "../src/store/secrets.ts";
import type { EventsRepo } from "../src/store/events-repo.ts";
import {
  openEventLog,
  startPruning,
  type Broadcast,
  type Publisher,
} from "../src/session/event-publisher.ts";
import { openOutbound, type Outbound } from "../src/session/outbound-setup.ts";
import { handOverDeadline } from "../src/session/outbound.ts";
import { OwnedAccounts } from "../src/session/owned-accounts.ts";
import { METRICS } from "../src/gateway/metrics.ts";
import type { OwnerSend, SendResult } from "../src/messages/types.ts";

export type SessionCreateParams = NewAccount;
export type SessionSettings = Record<string, never>;

/** Where a `session.ping` ran: the owner, its epoch, and the node that forwarded it (if any). */
export interface PingResult {
  node: string;
  epoch: number | null;
  forwardedBy: string | null;
}

interface SessionVars extends MongoVars {
  runtime: SessionRuntime;
  /** The account actions' work on the owner (src/session/owned-accounts.ts). */
  owned: OwnedAccounts;
  repo: AccountsRepo;
  authStore: GridFsAuthStore;
  workerNode?: WorkerNode;
  /** `broadcast` of account events, each logged first (src/session/event-publisher.ts). */
  publish: Broadcast;
  events: EventsRepo;
  pruneTimer?: NodeJS.Timeout;
  outbound: Outbound;
}
interface SessionMethods {
  /** Where a call must run: null → here; a node id → forward there (`forwardTo`). */
  routeToOwner(ctx: Context<{ workspaceId: string }>): Promise<string | null>;
  forwardTo(ctx: Context<{ workspaceId: string }>, nodeID: string): Promise<unknown>;
  accountOf(ctx: Context<AccountParams>): Promise<AccountDoc>;
  onOwner<T>(ctx: Context<AccountParams>, local: (doc: AccountDoc) => Promise<T>): Promise<T>;
}
type SessionThis = Service<SessionSettings> & SessionVars & SessionMethods;

const workspaceId = { type: "string", pattern: WORKSPACE_ID_PATTERN };
const accountId = { type: "string", min: 1, max: 64 };
const account = validatorOf(ACCOUNT_PARAMS.account);

const SessionService: ServiceSchema<SessionSettings, SessionMethods, SessionVars> = {
  name: "session",
  mixins: [chatsMixin(), mongoMixin()],

  created(this: SessionThis) {
    this.broker.createService(ClusterService);
  },

  actions: {
    /** Routing probe (cheap, no account): runs on the workspace's owner like every session.* call. */
    ping: {
      strategy: WORKSPACE_SHARD,
      params: { workspaceId },
      async handler(this: SessionThis, ctx: Context<{ workspaceId: string }>): Promise<PingResult> {
        const owner = await this.routeToOwner(ctx);
        if (owner)
          return { ...((await this.forwardTo(ctx, owner)) as PingResult), forwardedBy: this.broker.nodeID };
        const fence = this.workerNode?.ownership.current(ctx.params.workspaceId);
        return { node: this.broker.nodeID, epoch: fence?.epoch ?? null, forwardedBy: null };
      },
    },

    /** Hands a workspace this node owns to `target` (cluster.rebalance calls it on the owner). */
    handoff: {
      visibility: "public",
      params: { workspaceId, target: { type: "string", min: 1 } },
      async handler(
        this: SessionThis,
        ctx: Context<{ workspaceId: string; target: string }>,
      ): Promise<boolean> {
        return (await this.workerNode?.ownership.handOff(ctx.params.workspaceId, ctx.params.target)) ?? false;
      },
    },

    /**
     * Records a new account on the workspace's owner, stamped with its fence and `initializing`, and
     * starts it: one insert, no claim to write (`accounts.create`; the hot path of a first QR).
     */
    create: {
      strategy: WORKSPACE_SHARD,
      params: {
        workspaceId,
        accountId,
        sessionId: { type: "string", min: 1, max: 200 },
        name: { type: "string", min: 1, max: 100 },
        engine: { type: "string", min: 1, max: 32 },
        firstInWorkspace: { type: "boolean", optional: true },
      },
      async handler(this: SessionThis, ctx: Context<SessionCreateParams>): Promise<AccountView> {
        const owner = await this.routeToOwner(ctx);
        if (owner) return (await this.forwardTo(ctx, owner)) as AccountView;
        const p = ctx.params;
        resolveEngine(p.engine);
        // `account.created` is then the log's first event: no lookups for what it holds.
        if (p.firstInWorkspace) this.events.expectEmpty(p.workspaceId);
        const fence = await this.runtime.fenceFor(p.workspaceId);
        const doc = newAccountDoc(p, new Date(), fence);
        const view = toAccountView(doc);
        let recorded = false;
        try {
          await this.runtime.createAndStart(doc, async () => {
            await this.repo.insert(doc);
            recorded = true;
            // Before any status of the account leaves this node: its events are in order.
            await this.publish("account.created", { account: view });
          });
        } catch (err) {
          if (!recorded) {
            // Another create recorded this id first (a gateway's fallback, whose `session.start`
            // waited on this one and failed with it): a pass asked for now starts that account here.
            if (isDuplicateKey(err)) {
              this.workerNode?.kick();
              throw err;
            }
            // An insert whose answer was lost may have landed: this create's account, if stored, is
            // announced now and started by a pass asked for now.
            const stored = await this.repo.get(p.workspaceId, doc._id).catch(() => null);
            if (stored?.sessionId !== doc.sessionId) throw err;
            this.logger.warn(
              `session.create ${doc._id}: recorded, its answer lost (${(err as Error).message})`,
            );
            await this.publish("account.created", { account: view });
            this.workerNode?.kick();
            return view;
          }
          // Recorded, and wanted running: this node's reconciler starts it (an `initializing` account
          // under the current fence that does not run here), on a pass asked for now.
          this.logger.warn(`session.create ${doc._id}: start failed (${(err as Error).message})`);
          this.workerNode?.kick();
        }
        return view;
      },
    },

    start: {
      strategy: WORKSPACE_SHARD,
      params: account,
      async handler(this: SessionThis, ctx: Context<AccountParams>): Promise<SessionStatusResult> {
        return this.onOwner(ctx, (doc) => this.owned.start(doc));
      },
    },

    stop: {
      strategy: WORKSPACE_SHARD,
      params: account,
      async handler(this: SessionThis, ctx: Context<AccountParams>): Promise<SessionStatusResult> {
        return this.onOwner(ctx, (doc) => this.owned.stop(doc));
      },
    },

    logout: {
      strategy: WORKSPACE_SHARD,
      params: account,
      async handler(this: SessionThis, ctx: Context<AccountParams>): Promise<SessionStatusResult> {
        return this.onOwner(ctx, (doc) => this.owned.logout(doc));
      },
    },

    status: {
      strategy: WORKSPACE_SHARD,
      params: account,
      async handler(this: SessionThis, ctx: Context<AccountParams>): Promise<SessionStatusResult> {
        return this.onOwner(ctx, async (doc) => this.owned.status(doc));
      },
    },

    qr: {
      strategy: WORKSPACE_SHARD,
      params: account,
      async handler(this: SessionThis, ctx: Context<AccountParams>): Promise<QrView> {
        // Fast path, no database read: this node owns the workspace and runs the account, whose
        // workspace the runtime knows (tenancy holds). The hot path of GET …/qr (bench/routing).
        const running = this.runtime.info(ctx.params.accountId);
        if (running?.workspaceId === ctx.params.workspaceId && (await this.routeToOwner(ctx)) === null) {
          const live = this.runtime.qr(running.accountId);
          if (live) return live;
        }
        return this.onOwner(ctx, async (doc) => this.owned.qr(doc));
      },
    },

    /** The QRs on screen of a workspace's scanning accounts, from its owner (`accounts.snapshot`). */
    qrs: {
      strategy: WORKSPACE_SHARD,
      params: { workspaceId },
      async handler(
        this: SessionThis,
        ctx: Context<{ workspaceId: string }>,
      ): Promise<{ items: { accountId: string; qr: QrView }[] }> {
        const owner = await this.routeToOwner(ctx);
        if (owner)
          return (await this.forwardTo(ctx, owner)) as { items: { accountId: string; qr: QrView }[] };
        return { items: this.runtime.qrs(ctx.params.workspaceId) };
      },
    },

    pairingCode: {
      strategy: WORKSPACE_SHARD,
      params: validatorOf(ACCOUNT_PARAMS.pairingCode),
      async handler(this: SessionThis, ctx: Context<PairingCodeParams>): Promise<{ code: string }> {
        return this.onOwner(ctx, (doc) => this.owned.pairingCode(doc, ctx.params.phoneNumber));
      },
    },

    sendText: {
      strategy: WORKSPACE_SHARD,
      params: validatorOf(ACCOUNT_PARAMS.sendText),
      async handler(this: SessionThis, ctx: Context<SendTextParams>): Promise<{ id: string }> {
        return this.onOwner(ctx, (doc) => this.owned.sendText(doc, ctx.params.to, ctx.params.text));
      },
    },

    /** A checked message (accounts.sendMessage), sent at most once per idempotency key. */
    sendMessage: {
      strategy: WORKSPACE_SHARD,
      params: {
        workspaceId,
        accountId,
        draft: { type: "object" },
        media: { type: "object", optional: true },
        key: { type: "string", min: 1, max: 128, optional: true },
        digest: { type: "string", min: 1, max: 64 },
      },
      async handler(this: SessionThis, ctx: Context<OwnerSend>): Promise<SendResult> {
        // From the time its caller still waits (Moleculer passes the time left on with the call, also
        // when forwarded to the owner): a send without a key is not handed over once it gave up.
        const deadline = handOverDeadline(ctx.options.timeout);
        return this.onOwner(ctx, async () => this.outbound.sender.send(ctx.params, { deadline }));
      },
    },

    simulate: {
      strategy: WORKSPACE_SHARD,
      params: validatorOf(ACCOUNT_PARAMS.simulate),
      async handler(this: SessionThis, ctx: Context<SimulateParams>): Promise<SessionStatusResult> {
        return this.onOwner(ctx, (doc) => this.owned.simulate(doc, ctx.params));
      },
    },

    /** This node's running sessions (call with {nodeID}). */
    local: {
      params: {},
      handler(this: SessionThis): LocalSessionInfo[] {
        // A node thawed after SIGSTOP notices its lapsed lease here first, and fences before answering.
        this.workerNode?.ownership.liveness.isCurrent();
        return this.runtime.local();
      },
    },
  },

  methods: {
    async accountOf(this: SessionThis, ctx: Context<AccountParams>): Promise<AccountDoc> {
      const doc = await this.repo.get(ctx.params.workspaceId, ctx.params.accountId);
      if (!doc) throw new NotFoundError("Account", ctx.params.accountId);
      return doc;
    },

    /** Runs `local` on the workspace's owner: here (claiming it when unplaced), or forwarded there. */
    async onOwner<T>(
      this: SessionThis,
      ctx: Context<AccountParams>,
      local: (doc: AccountDoc) => Promise<T>,
    ): Promise<T> {
      const owner = await this.routeToOwner(ctx);
      if (owner) return this.forwardTo(ctx, owner) as Promise<T>;
      return local(await this.accountOf(ctx));
    },

    async routeToOwner(this: SessionThis, ctx: Context<{ workspaceId: string }>): Promise<string | null> {
      return this.workerNode ? this.workerNode.route(ctx) : null;
    },

    forwardTo(this: SessionThis, ctx: Context<{ workspaceId: string }>, nodeID: string): Promise<unknown> {
      return this.workerNode!.forward(ctx, nodeID);
    },
  },

  async started(this: SessionThis) {
    const cfg = configOf(this.broker);
    this.repo = new AccountsRepo(this.db);
    this.authStore = new GridFsAuthStore(this.db, SecretBox.fromConfig(cfg));
    let publisher: Publisher;
    ({
      events: this.events,
      publisher,
      publish: this.publish,
    } = await openEventLog(
      this.db,
      (e, p) => this.broker.broadcast(e, p),
      this.logger,
      cfg.eventsRetentionMs,
    ));
    this.pruneTimer = startPruning(this.events, cfg.eventsRetentionMs, this.logger);
    this.broker.metrics.register({
      name: METRICS.sendQueue,
      type: "gauge",
      description: "Sends waiting for their account's slot (SEND_MIN_GAP_MS)",
    });
    this.outbound = openOutbound(this.db, cfg, {
      fence: (ws) => this.workerNode?.ownership.current(ws) ?? null,
      engineSend: (accountId, message) => this.runtime.send(accountId, message),
      logger: this.logger,
      onQueueDepth: (depth) => this.broker.metrics.set(METRICS.sendQueue, depth),
    });
    this.runtime = new SessionRuntime({
      nodeId: this.broker.nodeID,
      repo: this.repo,
      authStore: this.authStore,
      ownership: NOT_PLACED,
      publisher,
      engine: {
        qr: cfg.qr,
        chromiumPath: cfg.chromiumPath,
        chromiumSingleProcess: cfg.chromiumSingleProcess,
        profileDir: nodeProfileDir(cfg.profileDir, this.broker.nodeID),
        startupTimeoutMs: cfg.startupTimeoutMs,
        simulatedAckMs: cfg.simulatedAckMs,
        simulatedSendMs: cfg.simulatedSendMs,
      },
      ...this.outbound.runtimeHooks,
      // Sends a lost owner queued for the account go out once it is connected here.
      onConnected: (accountId) => this.outbound.resume(accountId),
      startConcurrency: cfg.startConcurrency,
      capacity: cfg.sessionCapacity,
      failedRetry: { baseMs: cfg.failedRetryBaseMs, maxMs: cfg.failedRetryMaxMs },
      logger: this.logger,
    });
    this.owned = new OwnedAccounts(this.runtime, this.authStore, this.broker.nodeID, this.repo, this.publish);
    // Before this node takes workspaces: its first QRs would otherwise pay for a cold renderer.
    warmUpQrRendering();
    // Lease, fenced ownership over the placement table, reconciler.
    this.workerNode = new WorkerNode(this.broker, this.runtime, this.repo, this.logger);
    await this.workerNode.start();
  },

  async stopped(this: SessionThis) {
    clearInterval(this.pruneTimer);
    this.outbound?.close();
    // Drains (hands every workspace to its next owner), then stops what stayed while the lease holds.
    // The worker node's stop bounds its sessions' stop (hand-over.ts): not a second, unbounded one.
    if (this.workerNode) await this.workerNode.stop();
    else await this.runtime?.stopAll(); // without a worker node (it failed to start): nothing fenced
  },
};

// Typed with its own vars and methods above; exported as a plain schema so any broker takes it.
export default SessionService as unknown as ServiceSchema<SessionSettings>;
