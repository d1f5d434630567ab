// How whatsapp-web.js's Client events and errors translate into the engine contract. Pure functions
// and one small QR-policy tracker, so the mapping is unit-testable without a browser; the lifecycle
// code (engine.ts) decides what to do with each outcome.
import type { IncomingMessage, QrEvent, QrPolicy, ReadyInfo } from "../base.ts";
import type { MessageAck } from "../../messages/types.ts";
import type { FailureReason } from "../../lifecycle/states.ts";

/** The reason whatsapp-web.js gives in 'disconnected' when `qrMaxRetries` is exhausted. */
export const MAX_QR_RETRIES_REASON = "Max qrcode retries reached";
/** The reason whatsapp-web.js gives in 'disconnected' when the phone unlinked the device. */
export const LOGOUT_REASON = "LOGOUT";

/** WAState values after which whatsapp-web.js keeps running (it destroys the client on the others). */
const TRANSIENT_STATES = new Set(["OPENING", "PAIRING", "TIMEOUT"]);

export type DisconnectOutcome =
  | { kind: "logged_out" }
  | { kind: "qr_timeout" }
  /** whatsapp-web.js has destroyed its browser: the engine must restart the session. */
  | { kind: "restart"; reason: string };

export function classifyDisconnect(reason: unknown): DisconnectOutcome {
  const text = String(reason);
  if (text === LOGOUT_REASON) return { kind: "logged_out" };
  if (text === MAX_QR_RETRIES_REASON) return { kind: "qr_timeout" };
  return { kind: "restart", reason: text };
}

export type StateOutcome = { kind: "connected" } | { kind: "transient"; state: string } | { kind: "ignore" };

/** 'change_state': CONNECTED after a transient loss is `ready` again; OPENING/PAIRING/TIMEOUT are a
 * transient loss while connected. Other states come with a 'disconnected' of their own. */
export function classifyState(state: unknown): StateOutcome {
  const text = String(state);
  if (text === "CONNECTED") return { kind: "connected" };
  if (TRANSIENT_STATES.has(text)) return { kind: "transient", state: text };
  return { kind: "ignore" };
}

/** Errors of a start (puppeteer navigation, whatsapp-web.js injection) → failure reason. */
export function classifyStartError(err: unknown): { reason: FailureReason; message: string } {
  const message = err instanceof Error ? err.message : String(err);
  if (
    /net::ERR_|ERR_NAME_NOT_RESOLVED|ERR_INTERNET_DISCONNECTED|ERR_CONNECTION|ERR_TIMED_OUT|ERR_PROXY/.test(
      message,
    )
  ) {
    return { reason: "whatsapp_unreachable", message: `WhatsApp Web is unreachable: ${message}` };
  }
  if (/auth timeout|ready timeout/.test(message)) {
    return { reason: "startup_timeout", message: `WhatsApp Web did not load: ${message}` };
  }
  return { reason: "engine_error", message };
}

/** `client.info` → ReadyInfo. */
export function readyInfoOf(
  info: { wid?: { user?: string; _serialized?: string }; pushname?: string } | undefined,
): ReadyInfo {
  const user = info?.wid?.user ?? info?.wid?._serialized?.split("@")[0] ?? "";
  return { phoneNumber: user, pushName: info?.pushname || undefined };
}

export interface WebjsMessage {
  id?: { _serialized?: string; id?: string };
  from?: string;
  to?: string;
  body?: string;
  timestamp?: number;
  fromMe?: boolean;
}

/** "4915…@c.us" → "4915…" (a person, as sendText takes it); group and other ids stay whole. */
export function fromChatId(id: string): string {
  return id.endsWith("@c.us") ? id.slice(0, -"@c.us".length) : id;
}

/** A whatsapp-web.js Message → IncomingMessage (timestamp in seconds, as WhatsApp gives it). */
export function toIncomingMessage(msg: WebjsMessage): IncomingMessage {
  return {
    id: msg.id?._serialized ?? msg.id?.id ?? "",
    from: fromChatId(msg.from ?? ""),
    to: msg.to ? fromChatId(msg.to) : undefined,
    text: msg.body ?? "",
    timestamp: msg.timestamp ?? Math.floor(Date.now() / 1000),
  };
}

/** whatsapp-web.js's 'message_ack' (its MessageAck: -1 error, 0 pending, 1 server, 2 device, 3 read,
 * 4 played) → a receipt; null for `pending` and for messages this session did not send. */
export function toMessageAck(msg: WebjsMessage, ack: unknown, now = Date.now()): MessageAck | null {
  const status = ({ "-1": "failed", "1": "sent", "2": "delivered", "3": "read", "4": "played" } as const)[
    String(ack) as "-1" | "1" | "2" | "3" | "4"
  ];
  const id = msg.id?._serialized;
  if (!status || !id || msg.fromMe === false) return null;
  return { id, status, at: now };
}

/** "+49 151-234" or "49151234@c.us" → a chat id whatsapp-web.js accepts. */
export function toChatId(to: string): string {
  if (to.includes("@")) return to;
  return `${to.replace(/[^0-9]/g, "")}@c.us`;
}

/**
 * The QR policy (DESIGN.md): the first QR is valid `firstTtlMs`, each later one `refreshMs`, and after
 * `max` QRs the start fails with `qr_timeout`. WhatsApp Web rotates its QR by itself; the tracker
 * numbers them, dates their expiry and says when the policy is exhausted.
 */
export class QrPolicyTracker {
  private seq = 0;
  private lastExpiresAt = 0;
  constructor(private readonly policy: QrPolicy) {}

  /** The next QR event, or null once `max` QRs have been shown. */
  next(qr: string, now = Date.now()): QrEvent | null {
    if (this.seq >= this.policy.max) return null;
    this.seq++;
    const ttl = this.seq === 1 ? this.policy.firstTtlMs : this.policy.refreshMs;
    this.lastExpiresAt = now + ttl;
    return { qr, seq: this.seq, expiresAt: this.lastExpiresAt };
  }

  get shown(): number {
    return this.seq;
  }

  /** Epoch ms at which the current QR expires (0 before the first). */
  get expiresAt(): number {
    return this.lastExpiresAt;
  }

  reset(): void {
    this.seq = 0;
    this.lastExpiresAt = 0;
  }
}
