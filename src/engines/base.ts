// The engine contract (DESIGN.md, "Engines"): one running WhatsApp session. The session runtime
// drives engines only through this interface and maps their events onto the account lifecycle.
import { EventEmitter } from "node:events";
import type { FailureReason } from "../lifecycle/states.ts";
import type { IncomingMessage } from "../messages/incoming.ts";
import type { MessageAck, OutboundMessage } from "../messages/types.ts";
import type { AuthStore } from "../store/auth-store.ts";
import type {
  ChatMessage,
  ChatSummary,
  ContactInfo,
  EngineDirectory,
  GroupChange,
  GroupInfo,
  NumberCheck,
  Page,
  PageRequest,
} from "./directory.ts";

export interface QrPolicy {
  /** Validity of the first QR. @default 60000 */
  firstTtlMs: number;
  /** Validity of each refreshed QR. @default 20000 */
  refreshMs: number;
  /** QRs shown in all before `failed/qr_timeout`. @default 6 */
  max: number;
}

export interface EngineOptions {
  accountId: string;
  workspaceId: string;
  sessionId: string;
  authStore: AuthStore;
  qr: QrPolicy;
  /** Chromium binary (webjs). @default /usr/bin/chromium */
  chromiumPath?: string;
  /** Chromium's process model (webjs; CHROMIUM_SINGLE_PROCESS): true, false, or "auto" (one process
   * where the sandbox cannot run). @default "auto" */
  chromiumSingleProcess?: boolean | "auto";
  /** Parent of per-session browser profiles (webjs). */
  profileDir?: string;
  /** Start watchdog: a start that shows neither a QR nor `ready` in time fails. @default 60000 */
  startupTimeoutMs?: number;
  /** Simulated engine: delay of each receipt of a sent message (sent → delivered → read). @default 500 */
  simulatedAckMs?: number;
  /** Simulated engine: how long a send takes. @default 0 */
  simulatedSendMs?: number;
  /**
   * A turn in the node's start queue (START_CONCURRENCY) for a start the engine makes by itself — webjs
   * relaunching Chromium after a crash; resolves with the function that ends the turn. Without it
   * such starts wait for nothing.
   */
  startTurn?: () => Promise<() => void>;
  logger?: {
    info(...a: unknown[]): void;
    warn(...a: unknown[]): void;
    error(...a: unknown[]): void;
    debug(...a: unknown[]): void;
  };
}

export interface QrEvent {
  /** The raw QR payload (what the phone scans). */
  qr: string;
  /** 1-based number of this QR within the current start. */
  seq: number;
  /** Epoch ms after which the QR is no longer valid. */
  expiresAt: number;
}

export interface ReadyInfo {
  phoneNumber: string;
  pushName?: string;
}

export type { IncomingMessage } from "../messages/incoming.ts";

/** What a simulated incoming message may carry beyond its sender and text (type, media, quote…). */
export type SimulatedIncoming = Omit<IncomingMessage, "id" | "from" | "to" | "text" | "timestamp">;

export interface EngineEvents {
  qr: [QrEvent];
  pairing_code: [{ code: string; phoneNumber: string }];
  authenticated: [];
  ready: [ReadyInfo];
  /** Transient loss of the connection; the engine reconnects by itself. */
  disconnected: [string];
  /** The engine stopped for good; `reason` is one of FAILURE_REASONS. */
  failed: [FailureReason, string];
  /** The phone unlinked the device; the engine has deleted the auth state. */
  logged_out: [];
  message: [IncomingMessage];
  /** A receipt of a message this session sent. */
  message_ack: [MessageAck];
}

/** Every event name of the contract, for whoever listens to all of them (tests, recorders). */
export const ENGINE_EVENT_NAMES = [
  "qr",
  "pairing_code",
  "authenticated",
  "ready",
  "disconnected",
  "failed",
  "logged_out",
  "message",
  "message_ack",
] as const satisfies readonly (keyof EngineEvents)[];

/** Simulation hooks (simulated engine only). */
export interface SimulationHooks {
  scan(phoneNumber: string): Promise<void>;
  disconnect(): Promise<void>;
  logout(): Promise<void>;
  /** A message arrives from `from`; `extra` makes it a reply, a group message, a media message… */
  message(from: string, text: string, extra?: SimulatedIncoming): Promise<void>;
}

export interface StopOptions {
  /** Kill at once, with no graceful close and no final save: the node lost (or is losing) its fence,
   * and a browser still online after its lease expired would meet the next owner's. @default false */
  force?: boolean;
}

/** An engine: its lifecycle and sends here, its chats, contacts and groups in EngineDirectory
 * (directory.ts). */
export interface Engine extends EventEmitter<EngineEvents>, EngineDirectory {
  readonly name: string;
  /** Starts the session; resolves once started (not once connected). Restores auth state when saved. */
  start(): Promise<void>;
  /** Idempotent; releases every process and file handle. Saved auth state is kept. */
  stop(opts?: StopOptions): Promise<void>;
  /** Unlinks the device and deletes the auth state. */
  logout(): Promise<void>;
  requestPairingCode(phoneNumber: string): Promise<string>;
  sendText(to: string, text: string): Promise<{ id: string }>;
  /** Sends a message of any type; resolves once the engine has handed it to WhatsApp, with its id. A
   * session that is not connected throws InvalidStateError before anything is sent. */
  send(message: OutboundMessage): Promise<{ id: string }>;
  /** Persists the current auth state now (used before a hand-off). */
  flushAuthState(): Promise<void>;
  /** Present only on engines that can simulate the phone's side. */
  readonly simulate?: SimulationHooks;
}

export type EngineFactory = (opts: EngineOptions) => Engine;

/** Shared plumbing for engines: a typed emitter with a name. */
export abstract class BaseEngine extends EventEmitter<EngineEvents> implements Engine {
  abstract readonly name: string;
  constructor(protected readonly opts: EngineOptions) {
    super();
  }
  abstract start(): Promise<void>;
  abstract stop(opts?: StopOptions): Promise<void>;
  abstract logout(): Promise<void>;
  abstract requestPairingCode(phoneNumber: string): Promise<string>;
  abstract sendText(to: string, text: string): Promise<{ id: string }>;
  abstract send(message: OutboundMessage): Promise<{ id: string }>;
  abstract flushAuthState(): Promise<void>;

  // ---- EngineDirectory (directory.ts) ----
  abstract listChats(page: PageRequest): Promise<Page<ChatSummary>>;
  abstract chatMessages(chatId: string, page: PageRequest): Promise<Page<ChatMessage>>;
  abstract markRead(chatId: string): Promise<void>;
  abstract sendTyping(chatId: string): Promise<void>;
  abstract listContacts(page: PageRequest): Promise<Page<ContactInfo>>;
  abstract numberExists(phoneNumber: string): Promise<NumberCheck>;
  abstract listGroups(page: PageRequest): Promise<Page<GroupInfo>>;
  abstract createGroup(spec: { name: string; participants: string[] }): Promise<GroupChange>;
  abstract addParticipants(groupId: string, participants: string[]): Promise<GroupChange>;
  abstract removeParticipants(groupId: string, participants: string[]): Promise<GroupChange>;
}
