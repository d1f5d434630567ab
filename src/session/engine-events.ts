// Maps an engine's events (src/engines/base.ts) onto what a session does with them: lifecycle
// changes, and events that are only relayed. Kept apart from the lifecycle and queue code.
import type { EventEmitter } from "node:events";
import {
  ENGINE_EVENT_NAMES,
  type Engine,
  type EngineEvents,
  type IncomingMessage,
  type QrEvent,
} from "../engines/base.ts";
import type { AccountStatus, FailureReason } from "../lifecycle/states.ts";
import type { MessageAck } from "../messages/types.ts";

export type SessionChange =
  | {
      kind: "status";
      status: AccountStatus;
      reason?: FailureReason;
      message?: string;
      phoneNumber?: string;
      pushName?: string;
      qr?: QrEvent;
    }
  | { kind: "pairing_code"; code: string; phoneNumber: string }
  | { kind: "message"; message: IncomingMessage }
  | { kind: "ack"; ack: MessageAck };

type Handlers = { [E in keyof EngineEvents]: (...args: EngineEvents[E]) => void };

/** Subscribes `sink` to every event of `engine`; returns the unsubscribe function. */
export function bindEngineEvents(engine: Engine, sink: (change: SessionChange) => void): () => void {
  const handlers: Handlers = {
    qr: (qr) => sink({ kind: "status", status: "qr_scanning", qr }),
    authenticated: () => sink({ kind: "status", status: "authenticated" }),
    ready: (info) =>
      sink({ kind: "status", status: "connected", phoneNumber: info.phoneNumber, pushName: info.pushName }),
    disconnected: (why) => sink({ kind: "status", status: "disconnected", message: why }),
    failed: (reason, message) => sink({ kind: "status", status: "failed", reason, message }),
    logged_out: () => sink({ kind: "status", status: "logged_out" }),
    pairing_code: (p) => sink({ kind: "pairing_code", ...p }),
    message: (message) => sink({ kind: "message", message }),
    message_ack: (ack) => sink({ kind: "ack", ack }),
  };
  // Node's typings cannot pair a generic event name with its listener's type; `handlers` is checked
  // against the contract above, so the engine is subscribed to as a plain emitter.
  const emitter: EventEmitter = engine;
  for (const event of ENGINE_EVENT_NAMES) emitter.on(event, handlers[event]);
  return () => {
    for (const event of ENGINE_EVENT_NAMES) emitter.off(event, handlers[event]);
  };
}
