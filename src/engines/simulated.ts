// The `simulated` engine: a faithful stand-in for whatsapp-web.js in tests, demos and load tests.
// It follows the QR policy with real-looking payloads, "connects" when a scan is simulated, saves and
// restores its auth state through the AuthStore like a real engine, and keeps only a handful of fields
// per session (one pending timer at most), so thousands of sessions fit on one worker.
import { randomBytes } from "node:crypto";
import { DatabaseUnavailableError, InvalidStateError, reactionTargetNotFound } from "../errors.ts";
import type { AckStatus, MessageType, OutboundMessage } from "../messages/types.ts";
import { BaseEngine, type EngineOptions, type SimulatedIncoming, type SimulationHooks } from "./base.ts";
import type { GroupChange, PageRequest } from "./directory.ts";
import { simulatedDirectoryOf, type SimulatedDirectory } from "./simulated-directory.ts";
import { asDatabaseError } from "../store/mongo.ts";

/** Delay before a simulated connection loss heals itself. */
export const SIMULATED_RECONNECT_MS = 100;

type Phase = "idle" | "starting" | "qr" | "authenticating" | "connected" | "disconnected" | "stopped";

/** What a simulated device keeps in the AuthStore (a real engine keeps a browser profile there). */
interface SimulatedAuthState {
  engine: "simulated";
  phoneNumber: string;
  pushName: string;
  keys: string;
  savedAt: string;
}

const PAIRING_ALPHABET = "ABCDEFGHJKLMNPQRSTVWXYZ123456789";
const PHONE_PATTERN = /^\+?[0-9]{6,16}$/;

function key32(): string {
  return randomBytes(32).toString("base64");
}

export class SimulatedEngine extends BaseEngine {
  readonly name = "simulated";
  private phase: Phase = "idle";
  private qrSeq = 0;
  /** The one pending step: next QR, QR timeout, restore, or reconnect. */
  private timer: NodeJS.Timeout | null = null;
  /** Bumped by stop/fail/logout so that work in flight (an AuthStore await) never emits afterwards. */
  private generation = 0;
  /** "noiseKey,identityKey,advSecret" of this device, as in WhatsApp's QR payload. */
  private keys: string | null = null;
  private phoneNumber: string | null = null;
  private pushName: string | null = null;
  /** Receipts still to come of sent messages. */
  private readonly ackTimers = new Set<NodeJS.Timeout>();

  constructor(opts: EngineOptions) {
    super(opts);
  }

  /** Built on demand so an idle session carries no closures. */
  get simulate(): SimulationHooks {
    return {
      scan: (phoneNumber) => this.scan(phoneNumber),
      disconnect: () => this.disconnect(),
      logout: () => this.phoneUnlinks(),
      message: (from, text, extra) => this.incoming(from, text, extra),
    };
  }

  async start(): Promise<void> {
    if (this.phase !== "idle" && this.phase !== "stopped") return;
    const gen = ++this.generation;
    this.phase = "starting";
    let saved: Buffer | null;
    try {
      saved = await this.opts.authStore.load(this.opts.sessionId);
    } catch (err) {
      // As webjs: a database that did not answer is a failure time fixes (retried), not an engine error.
      const outage = asDatabaseError(err);
      if (!(outage instanceof DatabaseUnavailableError)) throw err;
      if (gen !== this.generation) return;
      this.halt();
      this.emit("failed", "browser_launch_failed", `Restoring the auth state failed: ${outage.message}`);
      return;
    }
    if (gen !== this.generation) return;
    if (saved) this.later(0, () => this.restore(saved));
    else {
      this.keys = `${key32()},${key32()},${key32()}`;
      this.qrSeq = 0;
      this.later(0, () => this.showQr());
    }
  }

  async stop(): Promise<void> {
    this.halt();
    this.keys = null;
  }

  async logout(): Promise<void> {
    this.halt();
    this.phoneNumber = null;
    try {
      await this.opts.authStore.delete(this.opts.sessionId);
    } catch (err) {
      // As webjs: the session ends `failed` rather than stay `connected` with nothing running; a logout
      // asked again deletes the state (Session.logout without engine).
      this.emit("failed", "engine_error", `Deleting the auth state failed: ${(err as Error).message}`);
      throw err;
    }
    this.emit("logged_out");
  }

  async requestPairingCode(phoneNumber: string): Promise<string> {
    if (this.phase !== "qr") throw new InvalidStateError("A pairing code needs a session waiting for a link");
    let code = "";
    for (const b of randomBytes(8)) code += PAIRING_ALPHABET[b % PAIRING_ALPHABET.length];
    this.emit("pairing_code", { code, phoneNumber });
    return code;
  }

  async sendText(to: string, text: string): Promise<{ id: string }> {
    return this.send({ to, type: "text", text });
  }

  /** "Sends" (taking SIMULATED_SEND_MS): records the message (sentBySimulatedEngine), gives it an id like
   * WhatsApp's, and acks it sent → delivered → read (→ played for audio) SIMULATED_ACK_MS apart. A
   * reaction gets no receipts. */
  async send(message: OutboundMessage): Promise<{ id: string }> {
    this.assertConnected("send a message");
    if (message.type === "reaction" && !this.directory.hasMessage(message.replyTo ?? ""))
      throw reactionTargetNotFound(message.replyTo);
    const sendMs = this.opts.simulatedSendMs ?? 0;
    if (sendMs > 0) {
      const gen = this.generation;
      await new Promise((resolve) => setTimeout(resolve, sendMs));
      if (gen !== this.generation)
        throw new InvalidStateError("Cannot send a message: the session stopped while sending");
    }
    const chat = message.to.includes("@") ? message.to : `${message.to.replace(/[^0-9]/g, "")}@c.us`;
    const id = `true_${chat}_3EB0${randomBytes(8).toString("hex").toUpperCase()}`;
    recordSent(this.opts.accountId, { id, ...summaryOf(message), at: Date.now() });
    this.directory.recordSent({ ...message, id }, this.phoneNumber!);
    if (message.type !== "reaction") {
      const steps: AckStatus[] = ["sent", "delivered", "read"];
      if (message.type === "audio") steps.push("played");
      this.scheduleAcks(id, steps);
    }
    return { id };
  }

  // ---- EngineDirectory: the phone's chats, contacts and groups (simulated-directory.ts) ----

  private get directory(): SimulatedDirectory {
    return simulatedDirectoryOf(this.opts.accountId);
  }

  /** The directory, once connected (as every directory call of a real engine needs). */
  private connected(what: string): SimulatedDirectory {
    this.assertConnected(what);
    return this.directory;
  }

  async listChats(page: PageRequest) {
    return this.connected("list chats").listChats(page);
  }
  async chatMessages(chatId: string, page: PageRequest) {
    return this.connected("read messages").chatMessages(chatId, page);
  }
  async markRead(chatId: string) {
    this.connected("mark a chat read").markRead(chatId);
  }
  async sendTyping(chatId: string) {
    this.connected("show typing").sendTyping(chatId);
  }
  async listContacts(page: PageRequest) {
    return this.connected("list contacts").listContacts(page);
  }
  async numberExists(phoneNumber: string) {
    return this.connected("check a number").numberExists(phoneNumber);
  }
  async listGroups(page: PageRequest) {
    return this.connected("list groups").listGroups(page);
  }
  async createGroup(spec: { name: string; participants: string[] }): Promise<GroupChange> {
    return this.connected("create a group").createGroup(spec, this.phoneNumber!);
  }
  async addParticipants(groupId: string, participants: string[]) {
    return this.connected("add participants").addParticipants(groupId, participants);
  }
  async removeParticipants(groupId: string, participants: string[]) {
    return this.connected("remove participants").removeParticipants(groupId, participants);
  }

  async flushAuthState(): Promise<void> {
    if (this.phoneNumber && (this.phase === "connected" || this.phase === "disconnected"))
      await this.saveAuth();
  }

  // ---- the phone's side ----

  private async scan(phoneNumber: string): Promise<void> {
    if (this.phase !== "qr") throw new InvalidStateError(`Nothing to scan: the session is ${this.phase}`);
    if (!PHONE_PATTERN.test(phoneNumber)) throw new InvalidStateError(`Not a phone number: '${phoneNumber}'`);
    this.clearTimer();
    const gen = this.generation;
    this.phase = "authenticating";
    this.phoneNumber = phoneNumber.replace(/^\+/, "");
    this.pushName = `Simulated ${this.phoneNumber.slice(-4)}`;
    this.emit("authenticated");
    // As webjs after `ready`: the device is linked whatever the store says (a failover would need a
    // QR); a save that fails is logged, and the session is connected, not `authenticated` for ever.
    await this.saveAuth().catch((err) =>
      this.opts.logger?.warn("saving auth state after the scan failed:", err),
    );
    if (gen !== this.generation) return;
    this.phase = "connected";
    this.emit("ready", { phoneNumber: this.phoneNumber, pushName: this.pushName });
  }

  private async disconnect(): Promise<void> {
    this.assertConnected("disconnect");
    this.phase = "disconnected";
    this.emit("disconnected", "simulated connection loss");
    this.later(SIMULATED_RECONNECT_MS, () => {
      this.phase = "connected";
      this.emit("ready", { phoneNumber: this.phoneNumber!, pushName: this.pushName ?? undefined });
    });
  }

  /** As webjs when the phone unlinks: the device is gone whatever the store says, so a delete that
   * fails is logged and the session is `logged_out` all the same. */
  private async phoneUnlinks(): Promise<void> {
    this.assertConnected("log out from the phone");
    this.halt();
    this.phoneNumber = null;
    await this.opts.authStore
      .delete(this.opts.sessionId)
      .catch((err) => this.opts.logger?.warn("deleting auth state failed:", err));
    this.emit("logged_out");
  }

  /** A message from `from` (a group's id with `extra.author` for a group message); its id is
   * WhatsApp-like: `false_<chat>_<key>`, or `false_<group>_<key>_<author>` in a group. */
  private async incoming(from: string, text: string, extra: SimulatedIncoming = {}): Promise<void> {
    this.assertConnected("receive a message");
    const key = `3EB0${randomBytes(8).toString("hex").toUpperCase()}`;
    const message = {
      ...extra,
      id: extra.author ? `false_${from}_${key}_${extra.author}` : `false_${from}_${key}`,
      from,
      to: this.phoneNumber ?? undefined,
      text,
      timestamp: Math.floor(Date.now() / 1000),
    };
    this.directory.recordReceived(message);
    this.emit("message", message);
  }

  // ---- internals ----

  private restore(saved: Buffer): void {
    let state: SimulatedAuthState;
    try {
      state = JSON.parse(saved.toString("utf8")) as SimulatedAuthState;
      if (!state.phoneNumber || !state.keys) throw new Error("incomplete auth state");
    } catch (err) {
      this.halt();
      this.emit("failed", "auth_failure", `Saved auth state is unreadable: ${(err as Error).message}`);
      return;
    }
    this.keys = state.keys;
    this.phoneNumber = state.phoneNumber;
    this.pushName = state.pushName;
    this.phase = "authenticating";
    this.emit("authenticated");
    this.phase = "connected";
    this.emit("ready", { phoneNumber: state.phoneNumber, pushName: state.pushName });
  }

  /** Shows QR number `qrSeq + 1`; after the last one expires the start fails with `qr_timeout`. */
  private showQr(): void {
    const { firstTtlMs, refreshMs, max } = this.opts.qr;
    const seq = ++this.qrSeq;
    const ttl = seq === 1 ? firstTtlMs : refreshMs;
    this.phase = "qr";
    // WhatsApp's payload: "2@<ref>,<noise key>,<identity key>,<adv secret>"; only the ref changes.
    const qr = `2@${randomBytes(45).toString("base64")},${this.keys}`;
    this.emit("qr", { qr, seq, expiresAt: Date.now() + ttl });
    this.later(ttl, () => {
      if (seq < max) return this.showQr();
      this.halt();
      this.emit("failed", "qr_timeout", `QR code shown ${max} times without being scanned`);
    });
  }

  private async saveAuth(): Promise<void> {
    const state: SimulatedAuthState = {
      engine: "simulated",
      phoneNumber: this.phoneNumber!,
      pushName: this.pushName ?? "",
      keys: this.keys ?? `${key32()},${key32()},${key32()}`,
      savedAt: new Date().toISOString(),
    };
    await this.opts.authStore.save(this.opts.sessionId, Buffer.from(JSON.stringify(state)));
  }

  private assertConnected(what: string): void {
    if (this.phase !== "connected")
      throw new InvalidStateError(`Cannot ${what}: the session is ${this.phase}`);
  }

  private later(ms: number, step: () => void): void {
    this.clearTimer();
    this.timer = setTimeout(() => {
      this.timer = null;
      step();
    }, ms);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Receipts of `id`, one per `ackMs` (the first at once); dropped when the session stops. */
  private scheduleAcks(id: string, steps: AckStatus[]): void {
    const gen = this.generation;
    const ackMs = this.opts.simulatedAckMs ?? 500;
    steps.forEach((status, i) => {
      const timer = setTimeout(() => {
        this.ackTimers.delete(timer);
        if (gen === this.generation) this.emit("message_ack", { id, status, at: Date.now() });
      }, i * ackMs);
      this.ackTimers.add(timer);
    });
  }

  private halt(): void {
    for (const t of this.ackTimers) clearTimeout(t);
    this.ackTimers.clear();
    this.clearTimer();
    this.generation++;
    this.phase = "stopped";
  }
}

/** What the simulated engine keeps of a sent message (no media bytes). */
export interface SimulatedSend {
  id: string;
  to: string;
  type: MessageType;
  text?: string;
  caption?: string;
  media?: { mimetype: string; filename?: string; size: number };
  location?: OutboundMessage["location"];
  contact?: OutboundMessage["contact"];
  emoji?: string;
  replyTo?: string;
  mentions?: string[];
  at: number;
}

/** Sent messages kept per account (the latest), for tests and demos to see what left. */
const SENT_KEPT = 500;
const sent = new Map<string, SimulatedSend[]>();

function recordSent(accountId: string, entry: SimulatedSend): void {
  const list = sent.get(accountId) ?? [];
  list.push(entry);
  if (list.length > SENT_KEPT) list.splice(0, list.length - SENT_KEPT);
  sent.set(accountId, list);
}

function summaryOf(m: OutboundMessage): Omit<SimulatedSend, "id" | "at"> {
  const { media, ...rest } = m;
  return media
    ? { ...rest, media: { mimetype: media.mimetype, filename: media.filename, size: media.data.length } }
    : rest;
}

/** The messages simulated engines of this process sent for an account, oldest first. */
export function sentBySimulatedEngine(accountId: string): readonly SimulatedSend[] {
  return sent.get(accountId) ?? [];
}

export function createSimulatedEngine(opts: EngineOptions): SimulatedEngine {
  return new SimulatedEngine(opts);
}
