// The `io` service (DESIGN.md, "Interfaces"): moleculer-io's Socket.IO server on the HTTP server of
// this node's `api` service (same port and CORS), so it runs only next to `api` (src/node.ts says so).
// - handshake `auth: {token}` with a workspace key, checked by the api service's KeyStore (the same
//   lookup and cache as REST), refused at connect otherwise;
// - each socket joins `ws:<workspaceId>` only, after it got `accounts.snapshot` (one waiting to
//   continue a capped replay is in `qr:<workspaceId>` meanwhile: QR codes are not in the log);
// - `account.*` broker events (broadcast, so every gateway gets each once) go to the local sockets of
//   that workspace's room only: the default in-memory adapter and `.local`, so a gateway never fans an
//   event out to another gateway's sockets (each gateway relays its own copy);
// - `accounts.snapshot` carries `cursor`, where a client that reconnects later resumes: the newest event
//   this gateway relayed of the workspace before reading the snapshot, or the log's head when it
//   relayed none yet (a gateway that just started, a quiet workspace);
// - resume: a socket that passes a cursor (handshake `auth: {token, after}`, or `emit("resume", after,
//   cb)` later) first gets the logged events after it (accounts.events), then live events; held
//   live events the replay already emitted are dropped by seq, so each reaches it once. Each replay is
//   a socket call (the calls quota) and sends at most REPLAY_MAX_PAGES pages: one that stops there
//   says where to continue (`events.resume_more` at connect, `more` in a resume's answer) and the
//   socket gets live events only after a replay that reached the end of the log;
// - `call` → whitelisted `accounts.*` actions with the socket's workspace forced;
// - a revoked key (`apikeys.revoked`) loses its open sockets; every SOCKET_KEY_CHECK_MS the keys of
//   open sockets are checked again, so a missed broadcast delays that by one period plus the key
//   cache's few seconds;
// - wrong keys count against the client address's failed-auth limit, shared with REST;
// - a gateway whose NATS connection drops closes its sockets (src/io/bus-watch.ts): what is broadcast
//   meanwhile never reaches it, and clients resume from their cursor once it is back.
// Start and stop: both services are created before either starts, so the api's HTTP server exists when
// Socket.IO attaches to it; on stop Socket.IO closes its engine's connections only (clients reconnect),
// and the api service closes the server (whose close waits for those connections to end).
import { type Context, type Service, type ServiceSchema } from "moleculer";
import SocketIOService from "moleculer-io";
import type { Server as HttpServer } from "node:http";
import type { Server, Socket } from "socket.io";
import { configOf } from "../src/config.ts";
import { ERR_VALIDATION, GatewayStartingError, QuotaExceededError } from "../src/errors.ts";
import { callerOfKey } from "../src/gateway/auth.ts";
import type { Caller, KeyStore } from "../src/gateway/keys.ts";
import { RateLimiter } from "../src/gateway/rate-limit.ts";
import { BoundedMap } from "../src/bounded-map.ts";
import { callError } from "../src/gateway/http-errors.ts";
import { watchBus } from "../src/io/bus-watch.ts";
import {
  RELAYED_EVENTS,
  RecentReplays,
  RelayedUpTo,
  SnapshotHold,
  seqOfEvent,
  qrRoomOf,
  roomOf,
  withoutQrsInSnapshot,
  withoutReplayed,
  workspaceOfEvent,
  type HeldEvent,
  type RelayedEvent,
  type SnapshotItem,
} from "../src/io/relay.ts";
import { SocketAdmissions } from "../src/io/socket-admissions.ts";
import { authenticateSocket, refusal, type SocketPrincipal } from "../src/io/socket-auth.ts";
import type { QuotaBook } from "../src/quotas.ts";
import { handshakeError, prepareSocketCall } from "../src/io/socket-calls.ts";
import { seqOfCursor } from "../src/store/events-repo.ts";
import { withTimeout } from "../src/with-timeout.ts";

interface IoThis extends Service {
  /** Undefined before start and after stop. */
  io?: Server;
  snapshotHold: SnapshotHold;
  /** Per workspace, the highest event cursor this gateway relayed: where a snapshot stands in the log. */
  relayedUpTo: RelayedUpTo;
  /** Sockets a replay just sent the log to, and how far: its live events already sent are not resent. */
  recentReplays: RecentReplays;
  /** Keys revoked while this gateway ran: a socket whose handshake was under way at the revocation
   * (its key already checked) is refused once it connects. */
  revokedKeys: BoundedMap<string, true>;
  /** Sockets admitted by their handshake and not connected yet (the sockets quota counts them). */
  admissions: SocketAdmissions;
  gateway(): ApiHost;
  resolveSocketKey(token: string, address: string): Promise<Caller | null>;
  socketAuthorize(socket: Socket): Promise<SocketPrincipal>;
  admitSocket(socket: Socket): Promise<SocketPrincipal>;
  relayAccountEvent(event: RelayedEvent, payload: unknown): void;
  onSocketConnected(socket: Socket): Promise<void>;
  connectPhase(socket: Socket): Promise<void>;
  replayInPlace(socket: Socket, after: unknown): Promise<ResumeAnswer>;
  replay(socket: Socket, after: unknown, sent: ReplayProgress): Promise<Replayed>;
  resume(socket: Socket, after: unknown): Promise<ResumeAnswer>;
  callFromSocket(socket: Socket, action: unknown, params: unknown): Promise<unknown>;
  disconnectKey(keyId: string): void;
  recheckSocketKeys(): Promise<void>;
  keyCheckTimer?: NodeJS.Timeout;
  /** Socket calls per workspace, against its socketCallsPerMinute quota (a bucket per workspace). */
  callLimiter: RateLimiter;
  admitCall(workspaceId: string): Promise<void>;
  /** Resolves once the other nodes know this gateway relays `account.*` (`announceRelay`). */
  relayAnnounced: Promise<void>;
  markRelayAnnounced: () => void;
  announceRelay(): Promise<void>;
  /** Set while the transporter is off the bus; resolves when it is back (handshakes wait for it). */
  busReturn: { back: Promise<void>; mark: () => void } | null;
  /** Counts the transporter's drops: a return is complete only if none came meanwhile. */
  busDrops: number;
  busLost(): void;
  busBack(): Promise<void>;
  stopBusWatch?: () => void;
}

/** What the io service uses of the node's api service. */
interface ApiHost {
  server: HttpServer;
  settings: { cors?: unknown };
  /** Undefined until the api service has started. */
  keys?: KeyStore;
  /** Wrong keys per client address, shared with REST. */
  failedAuth: RateLimiter;
  /** Undefined until the api service has started. */
  quotas?: QuotaBook;
}

type Respond = (err: unknown, res?: unknown) => void;

/** How long a handshake waits at most for this gateway's NATS connection to come back. */
const BUS_RETURN_WAIT_MS = 10_000;

/** How long sockets wait at most for the other nodes to answer the ping after this gateway's INFO. */
const RELAY_ANNOUNCE_WAIT_MS = 2000;

/** Where one replay stopped, and whether at its page cap with more to come. */
interface Replayed {
  nextCursor: string;
  more: boolean;
}

/** How far a replay under way has sent the log (null: nothing yet); kept when a page's read fails. */
interface ReplayProgress {
  upTo: number | null;
  /** Where the client resumed from (it has the log up to there), and the seqs the replay sent. */
  after?: number | null;
  seqs?: Set<number>;
}

/** A resume's answer: continue from `nextCursor` with another `resume` while `more`. */
interface ResumeAnswer {
  nextCursor: string;
  more: boolean;
}

/** A socket event's values and its acknowledgement: Socket.IO passes the callback last, however many
 * values the client sent before it (none, or more than the handler takes), and each is answered. */
function withAck(args: unknown[]): { values: unknown[]; reply?: Respond } {
  const last = args.at(-1);
  return typeof last === "function"
    ? { values: args.slice(0, -1), reply: last as Respond }
    : { values: args };
}

/** Socket.IO `call` handler (`emit("call", action, params?, cb)`); `this` is the socket (moleculer-io
 * sets `socket.$service`). */
async function onSocketCall(this: Socket, ...args: unknown[]): Promise<void> {
  const {
    values: [action, params],
    reply,
  } = withAck(args);
  const svc = (this as Socket & { $service: IoThis }).$service;
  try {
    const res = await svc.callFromSocket(this, action, params);
    reply?.(null, res);
  } catch (err) {
    reply?.(callError(err, svc.logger));
  }
}

/** Socket.IO `resume` handler: `emit("resume", after, cb)` → `cb(null, {nextCursor, more})` once replayed
 * (`emit("resume", cb)`: from the log's start). */
async function onSocketResume(this: Socket, ...args: unknown[]): Promise<void> {
  const {
    values: [after],
    reply,
  } = withAck(args);
  const svc = (this as Socket & { $service: IoThis }).$service;
  try {
    reply?.(null, await svc.resume(this, after));
  } catch (err) {
    reply?.(callError(err, svc.logger));
  }
}

/** Events read per replay call. */
const REPLAY_PAGE = 500;
/** Pages one replay sends at most (2,000 events), so a replay, counted as one socket call, is bounded
 * work; a longer log is continued by another `resume`. */
const REPLAY_MAX_PAGES = 4;

/**
 * Runs `task` once the socket's earlier replay (its connect phase, a resume) has ended: two at once
 * would share its held events and join its room in either order. With none under way it starts at once
 * (so the connect phase holds live events from the moment of connection).
 */
function oneReplayAtATime<T>(socket: Socket, task: () => Promise<T>): Promise<T> {
  const data = socket.data as { replaying?: Promise<unknown> };
  const run = data.replaying ? data.replaying.catch(() => undefined).then(task) : task();
  data.replaying = run;
  return run;
}

/** Live again: every event of its workspace from the room, none twice through the QR room. */
function joinLive(socket: Socket, workspaceId: string): void {
  socket.join(roomOf(workspaceId));
  socket.leave(qrRoomOf(workspaceId));
}

/** Out of the room until the client continues the log (`resume`): the QR codes shown meanwhile, which
 * no replay brings, still reach it. */
function awaitResume(socket: Socket, workspaceId: string): void {
  socket.join(qrRoomOf(workspaceId));
}

/** The held events the log does not have (QR codes): a replay brings every other one later. */
function unlogged(held: HeldEvent[]): HeldEvent[] {
  return held.filter((h) => seqOfEvent(h.payload) === null);
}

/** Resolves once the socket's queued packets were written (or it closed). */
function written(socket: Socket): Promise<void> {
  const conn = socket.conn;
  // engine.io's queue of packets not yet handed to the transport (typed private; emptied at `drain`).
  // Should a later engine.io not have it, replays go out unpaced, as before.
  const queued = (conn as unknown as { writeBuffer?: unknown[] }).writeBuffer;
  if (!socket.connected || !queued?.length) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      conn.off("drain", done);
      conn.off("close", done);
      resolve();
    };
    conn.on("drain", done);
    conn.on("close", done);
  });
}

const API_MISSING =
  'service "io" runs inside the "api" service\'s HTTP server: add "api" to SERVICES (or create the api service on this broker)';

function principalOf(socket: Socket): SocketPrincipal {
  return (socket.data as { principal: SocketPrincipal }).principal;
}

const relayHandlers = Object.fromEntries(
  RELAYED_EVENTS.map((event) => [
    event,
    function (this: IoThis, ctx: Context<unknown>) {
      this.relayAccountEvent(event, ctx.params);
    },
  ]),
);

const schema: ServiceSchema<Record<string, unknown>, object, object, IoThis> = {
  name: "io",
  mixins: [SocketIOService as Partial<ServiceSchema>],
  settings: {
    io: {
      options: {},
      namespaces: {
        "/": {
          authorization: true,
          // A function replaces moleculer-io's generic handler (which would call any action).
          events: { call: onSocketCall, resume: onSocketResume },
        },
      },
    },
  },
  // moleculer-io's public actions would let any caller on the bus (or a REST alias) emit to any room.
  actions: { broadcast: false, getClients: false },
  events: {
    "$broker.started"(this: IoThis) {
      void this.announceRelay();
    },
    ...relayHandlers,
    /** A revoked key loses its open sockets too, on every gateway (REST forgets it in api.service). */
    "apikeys.revoked"(this: IoThis, ctx: Context<{ keyId: string }>) {
      this.revokedKeys.set(ctx.params.keyId, true);
      this.disconnectKey(ctx.params.keyId);
    },
  },
  methods: {
    /** moleculer-io's authorization hook: throwing refuses the handshake (`connect_error`). */
    async socketAuthorize(this: IoThis, socket: Socket): Promise<SocketPrincipal> {
      try {
        return await this.admitSocket(socket);
      } catch (err) {
        // Every refusal in the contract's shape: a client tells "retry later" from "bad key".
        throw handshakeError(err, this.logger);
      }
    },

    async admitSocket(this: IoThis, socket: Socket): Promise<SocketPrincipal> {
      // A socket's snapshot and replay are `accounts.*` calls: none answers yet (a gateway just
      // restarted), so the client tries again instead of getting a failed snapshot and replay.
      if (
        !(await withTimeout(
          this.relayAnnounced.then(() => true),
          RELAY_ANNOUNCE_WAIT_MS + 1000,
        )) ||
        !this.broker.registry.getActionEndpoints("accounts.events")?.hasAvailable() ||
        (this.busReturn &&
          !(await withTimeout(
            this.busReturn.back.then(() => true),
            BUS_RETURN_WAIT_MS,
          )))
      )
        throw new GatewayStartingError();
      const principal = await authenticateSocket(socket.handshake.auth, (token) =>
        this.resolveSocketKey(token, socket.handshake.address),
      );
      // At most `sockets` open sockets per workspace on this gateway (each gateway counts its own),
      // those admitted and still connecting included (counted as the check passes).
      const ws = principal.workspaceId;
      const open = () =>
        [...(this.io?.of("/").sockets.values() ?? [])].filter(
          (s) => (s.data as { principal?: SocketPrincipal }).principal?.workspaceId === ws,
        ).length + this.admissions.count(ws);
      await this.gateway()
        .quotas?.admit(ws, "sockets", open, () => this.admissions.admitted(socket.id, ws))
        .catch((err: unknown) => {
          throw err instanceof QuotaExceededError ? refusal(err) : err;
        });
      (socket.data as { principal: SocketPrincipal }).principal = principal;
      return principal;
    },

    /**
     * A broadcast goes only to the nodes its sender knows listen to the event, and the other nodes
     * hear of this gateway's services from its INFO, sent up to a second after they started (Moleculer
     * gathers changes): a socket let in before would miss the events of that second, and its cursor
     * would step over them. So the INFO goes out once every service started, and a socket's handshake
     * waits until every node answered a ping sent after it (packets from one node are handled in
     * order), or 2 s.
     */
    async announceRelay(this: IoThis): Promise<void> {
      try {
        if (this.broker.transit) {
          await this.broker.registry.discoverer.sendLocalNodeInfo();
          await this.broker.ping(undefined, RELAY_ANNOUNCE_WAIT_MS);
        }
      } catch (err) {
        this.logger.warn(`io: announcing the relay to the other nodes: ${(err as Error).message}`);
      } finally {
        this.markRelayAnnounced();
      }
    },

    /**
     * The transporter lost NATS: events broadcast from now on never reach this gateway, and its
     * sockets would step over them. Every socket's connection is closed (clients reconnect by
     * themselves and resume from their cursor, which the replay reads from the log); handshakes wait
     * until the bus is back, and are refused SERVICE_UNAVAILABLE past BUS_RETURN_WAIT_MS.
     */
    busLost(this: IoThis): void {
      this.busDrops++;
      if (!this.busReturn) {
        let mark!: () => void;
        const back = new Promise<void>((resolve) => (mark = resolve));
        this.busReturn = { back, mark };
      }
      const sockets = [...(this.io?.of("/").sockets.values() ?? [])];
      this.logger.warn(
        `io: NATS connection lost: closing ${sockets.length} socket(s), which resume from their cursor once it is back`,
      );
      for (const socket of sockets) socket.conn.close();
    },

    /** Back on the bus: the other nodes hear again that this gateway relays (after a long cut they
     * dropped it), then sockets are let in. */
    async busBack(this: IoThis): Promise<void> {
      const drops = this.busDrops;
      if (!this.busReturn) return;
      await this.announceRelay();
      // Lost again meanwhile: the next return lets sockets in.
      if (this.busDrops !== drops || !this.busReturn) return;
      this.busReturn.mark();
      this.busReturn = null;
      this.logger.info("io: NATS connection back: sockets are let in again");
    },

    /** The node's api service; `io` cannot run without it. */
    gateway(this: IoThis): ApiHost {
      const api = this.broker.getLocalService("api") as unknown as ApiHost | undefined;
      if (!api) throw new Error(API_MISSING);
      return api;
    },

    /** moleculer-io's `started` calls this to create its server: Socket.IO goes on the api's. */
    initSocketIO(this: IoThis) {
      const api = this.gateway();
      const init = (SocketIOService as { methods: Record<string, (...a: unknown[]) => void> }).methods
        .initSocketIO;
      init.call(this, api.server, {
        ...(this.settings as { io: { options: object } }).io.options,
        cors: api.settings.cors,
      });
    },

    /** The key's caller; an address over its failed-auth limit is refused before any lookup. */
    async resolveSocketKey(this: IoThis, token: string, address: string): Promise<Caller | null> {
      const api = this.gateway();
      if (!api.keys) throw new GatewayStartingError();
      return callerOfKey(api.keys, api.failedAuth, token, address);
    },

    /** Drops the sockets of keys revoked meanwhile: the safety net for a missed `apikeys.revoked`.
     * One lookup per distinct key, answered by the key cache while its entry is fresh. */
    async recheckSocketKeys(this: IoThis): Promise<void> {
      const keys = this.gateway().keys;
      if (!this.io || !keys) return;
      const keyIds = new Set<string>();
      for (const socket of this.io.of("/").sockets.values()) {
        const principal = (socket.data as { principal?: SocketPrincipal }).principal;
        if (principal && !principal.admin) keyIds.add(principal.keyId);
      }
      for (const keyId of keyIds) {
        try {
          if (!(await keys.isActive(keyId))) this.disconnectKey(keyId);
        } catch (err) {
          // The database may be away for a moment: keep the sockets and check again next period.
          this.logger.warn(`io: re-checking key ${keyId} failed:`, (err as Error).message);
        }
      }
    },

    relayAccountEvent(this: IoThis, event: RelayedEvent, payload: unknown): void {
      const workspaceId = workspaceOfEvent(payload);
      if (!workspaceId || !this.io) return;
      this.relayedUpTo.note(workspaceId, payload);
      const live = this.io.of("/").local.to(roomOf(workspaceId));
      const room = seqOfEvent(payload) === null ? live.to(qrRoomOf(workspaceId)) : live;
      const sent = this.recentReplays.sent(workspaceId, payload);
      (sent.length > 0 ? room.except(sent) : room).emit(event, payload);
      this.snapshotHold.offer(workspaceId, event, payload);
    },

    /** Snapshot first, then what happened meanwhile, then live events from the room. A `resume` asked
     * meanwhile waits for all of it (`oneReplayAtATime`). */
    onSocketConnected(this: IoThis, socket: Socket): Promise<void> {
      return oneReplayAtATime(socket, () => this.connectPhase(socket));
    },

    async connectPhase(this: IoThis, socket: Socket): Promise<void> {
      const { workspaceId, keyId } = principalOf(socket);
      this.snapshotHold.hold(workspaceId, socket.id);
      socket.once("disconnect", () => {
        this.snapshotHold.release(workspaceId, socket.id);
        this.recentReplays.forget(workspaceId, socket.id);
      });
      let items: SnapshotItem[] = [];
      // Taken before the read: a client resuming from it later gets everything after the snapshot.
      // None relayed here yet (a gateway just started, a quiet workspace): the log's head, read first.
      const relayed = this.relayedUpTo.of(workspaceId);
      /** Where the socket has the log up to: after the snapshot, from its cursor (none: an empty log). */
      let has = "0";
      try {
        const snapshot = await this.broker.call<
          { items: SnapshotItem[]; cursor?: string },
          { workspaceId: string; withCursor: boolean }
        >(
          "accounts.snapshot",
          { workspaceId, withCursor: relayed === null },
          { meta: { workspaceId, keyId, $socketId: socket.id } },
        );
        items = snapshot.items;
        const cursor = relayed ?? snapshot.cursor;
        if (cursor !== undefined) has = cursor;
        socket.emit("accounts.snapshot", cursor === undefined ? { items } : { items, cursor });
      } catch (err) {
        this.logger.warn(`io: snapshot of workspace '${workspaceId}' failed:`, (err as Error).message);
        socket.emit("accounts.snapshot_error", callError(err, this.logger));
      }
      const after = (socket.handshake.auth as { after?: unknown } | undefined)?.after;
      let replayed: Replayed | null = null;
      const sent: ReplayProgress = { upTo: null };
      if (after !== undefined && after !== null && socket.connected) {
        try {
          // As much a socket call as a `resume`: reconnecting with a cursor is no way around the quota.
          await this.admitCall(workspaceId);
          replayed = await this.replay(socket, after, sent);
        } catch (err) {
          socket.emit("events.resume_error", callError(err, this.logger));
        }
      }
      const { events, dropped } = this.snapshotHold.release(workspaceId, socket.id);
      const held = withoutQrsInSnapshot(events, items);
      if (!socket.connected) return;
      if (replayed?.more || dropped) {
        // The log goes on past the replay's cap, or live events held meanwhile overflowed: the client
        // continues with `resume`, and live events start only once it has it all (they come after
        // the log, each once). QR codes are not in the log: those shown meanwhile go now.
        for (const qr of unlogged(held)) socket.emit(qr.event, qr.payload);
        awaitResume(socket, workspaceId);
        const nextCursor = replayed?.nextCursor ?? (sent.upTo !== null ? String(sent.upTo) : has);
        socket.emit("events.resume_more", { nextCursor });
        return;
      }
      const missed = withoutReplayed(held, sent);
      for (const held of missed) socket.emit(held.event, held.payload);
      // Synchronously after the flush: no event can fall between the two.
      joinLive(socket, workspaceId);
      if (sent.upTo !== null) this.recentReplays.note(workspaceId, socket.id, sent);
    },

    /** Emits the logged events after `after` to the socket, page by page, at most REPLAY_MAX_PAGES;
     * returns the last seq sent and whether it stopped at the cap (a full last page: there may be more). */
    async replay(this: IoThis, socket: Socket, after: unknown, sent: ReplayProgress): Promise<Replayed> {
      const { workspaceId, keyId } = principalOf(socket);
      let cursor = typeof after === "number" ? String(after) : after;
      // The client has the log up to where it resumes from.
      sent.upTo = seqOfCursor(cursor);
      sent.after = sent.upTo;
      sent.seqs = new Set();
      let more = false;
      for (let pages = 1; ; pages++) {
        const page = await this.broker
          .call<
            { items: { event: string; payload: unknown }[]; nextCursor: string },
            { workspaceId: string; after: unknown; limit: number; settle: boolean }
          >(
            "accounts.events",
            { workspaceId, after: cursor, limit: REPLAY_PAGE, settle: true },
            { meta: { workspaceId, keyId, $socketId: socket.id } },
          )
          .catch((err: unknown) => {
            // A cursor refused (malformed, past the newest event): the client has nothing by it, and
            // no live event held meanwhile may be taken as had.
            if ((err as { type?: string }).type === ERR_VALIDATION) {
              sent.upTo = null;
              sent.after = undefined;
              sent.seqs = undefined;
            }
            throw err;
          });
        for (const item of page.items) {
          socket.emit(item.event, item.payload);
          const seq = seqOfEvent(item.payload);
          if (seq !== null) sent.seqs.add(seq);
        }
        cursor = page.nextCursor;
        sent.upTo = Number(cursor);
        if (page.items.length < REPLAY_PAGE || !socket.connected) break;
        if (pages >= REPLAY_MAX_PAGES) {
          more = true;
          break;
        }
        // A client that does not read: the next page waits until this one left (memory stays bounded).
        await written(socket);
      }
      return { nextCursor: String(cursor), more };
    },

    /** A resume on an open socket: out of its room while the log is replayed, live events held meanwhile.
     * A socket call (the calls quota), run after the connect phase and any earlier resume. */
    async resume(this: IoThis, socket: Socket, after: unknown): Promise<ResumeAnswer> {
      const { workspaceId } = principalOf(socket);
      try {
        await this.admitCall(workspaceId);
      } catch (err) {
        // Refused other than by the quota (which a client waits out, then asks again): as after a
        // replay refused at connect, the rest of the log is lost to the socket (the client reads it
        // over REST) and it gets live events again, after any replay under way (which joins it itself).
        if (!(err instanceof QuotaExceededError))
          void oneReplayAtATime(socket, async () => {
            if (socket.connected) joinLive(socket, workspaceId);
          });
        throw err;
      }
      return oneReplayAtATime(socket, () => this.replayInPlace(socket, after));
    },

    /** Back in its room once the replay reached the end of the log; one stopped at its cap leaves the
     * socket out (live events wait for the client's next `resume`). */
    async replayInPlace(this: IoThis, socket: Socket, after: unknown): Promise<ResumeAnswer> {
      const { workspaceId } = principalOf(socket);
      // Held from here (QR codes included) until the replay ends.
      this.snapshotHold.hold(workspaceId, socket.id);
      socket.leave(roomOf(workspaceId));
      socket.leave(qrRoomOf(workspaceId));
      let replayed: Replayed | null = null;
      const sent: ReplayProgress = { upTo: null };
      try {
        replayed = await this.replay(socket, after, sent);
      } finally {
        const { events, dropped } = this.snapshotHold.release(workspaceId, socket.id);
        // Live events held meanwhile overflowed: as at the cap, the client continues from the log.
        if (replayed && dropped) replayed.more = true;
        const missed = withoutReplayed(events, sent);
        if (socket.connected && !replayed?.more) {
          for (const held of missed) socket.emit(held.event, held.payload);
          joinLive(socket, workspaceId);
          if (sent.upTo !== null) this.recentReplays.note(workspaceId, socket.id, sent);
        } else if (socket.connected) {
          for (const qr of unlogged(missed)) socket.emit(qr.event, qr.payload);
          awaitResume(socket, workspaceId);
        }
      }
      return { nextCursor: replayed.nextCursor, more: replayed.more };
    },

    async admitCall(this: IoThis, workspaceId: string): Promise<void> {
      const quotas = this.gateway().quotas;
      if (!quotas) return;
      const limit = (await quotas.of(workspaceId)).socketCallsPerMinute;
      if (!this.callLimiter.take(workspaceId, limit).allowed)
        throw new QuotaExceededError(workspaceId, "socketCallsPerMinute", limit);
    },

    disconnectKey(this: IoThis, keyId: string): void {
      if (!this.io) return;
      for (const socket of this.io.of("/").sockets.values()) {
        const principal = (socket.data as { principal?: SocketPrincipal }).principal;
        if (principal && !principal.admin && principal.keyId === keyId) {
          socket.emit("auth.revoked", { keyId, message: "This API key was revoked" });
          socket.disconnect(true);
        }
      }
    },

    async callFromSocket(this: IoThis, socket: Socket, action: unknown, params: unknown): Promise<unknown> {
      const { workspaceId, keyId, admin } = principalOf(socket);
      const call = prepareSocketCall(action, params, workspaceId);
      await this.admitCall(workspaceId);
      return this.broker.call(call.action, call.params, {
        meta: { workspaceId, keyId, admin, $socketId: socket.id, via: "socket.io" },
      });
    },
  },
  created(this: IoThis) {
    this.snapshotHold = new SnapshotHold();
    this.relayedUpTo = new RelayedUpTo();
    this.recentReplays = new RecentReplays();
    this.relayAnnounced = new Promise((resolve) => (this.markRelayAnnounced = resolve));
    this.revokedKeys = new BoundedMap(10_000);
    this.admissions = new SocketAdmissions();
    this.callLimiter = new RateLimiter(0);
    this.busDrops = 0;
    this.busReturn = null;
  },
  started(this: IoThis) {
    // Runs after moleculer-io's own `started` (mixin hooks first), which created `this.io`.
    this.io!.of("/").on("connection", (socket: Socket) => {
      this.admissions.settled(socket.id);
      // Admitted just before the bus dropped: it would relay nothing of what is lost meanwhile.
      if (this.busReturn) return void socket.conn.close();
      const { keyId, admin } = principalOf(socket);
      // Revoked while its handshake was under way: `disconnectKey` saw only connected sockets.
      if (!admin && this.revokedKeys.has(keyId)) return this.disconnectKey(keyId);
      void this.onSocketConnected(socket);
    });
    this.stopBusWatch = watchBus(this.broker, { down: () => this.busLost(), up: () => void this.busBack() });
    // Created on a running broker: no `$broker.started` is coming.
    if (this.broker.started) void this.announceRelay();
    const every = configOf(this.broker).socketKeyCheckMs;
    if (every > 0) {
      this.keyCheckTimer = setInterval(() => void this.recheckSocketKeys(), every);
      this.keyCheckTimer.unref();
    }
  },
  stopped(this: IoThis) {
    clearInterval(this.keyCheckTimer);
    this.stopBusWatch?.();
    // Runs before moleculer-io's `stopped`, whose `io.close()` would also close the api's HTTP server.
    const io = this.io;
    this.io = undefined;
    // Closes every connection at once without a DISCONNECT packet: clients see "transport close" and
    // reconnect by themselves (to this gateway once it is back, or another one). `disconnectSockets`
    // would tell them the server let them go, after which socket.io-client never reconnects.
    io?.engine.close();
  },
};

// Typed with its own `this` above; exported as a plain schema so any broker takes it.
export default schema as unknown as ServiceSchema;
