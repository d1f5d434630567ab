// Maps an engine's events (src/engines/base.ts) onto what the runtime does with them: lifecycle
// changes, and events that are only relayed. Kept apart from the lifecycle and queue code.
import type { Engine, IncomingMessage, QrEvent } from "../engines/base.ts";
import type { AccountStatus, FailureReason } from "../lifecycle/states.ts";

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
  | { kind: "message"; message: IncomingMessage };

/** Subscribes `sink` to every event of `engine`; returns the unsubscribe function. */
export function bindEngineEvents(engine: Engine, sink: (change: SessionChange) => void): () => void {
  const handlers = {
    qr: (qr: QrEvent) => sink({ kind: "status", status: "qr_scanning", qr }),
    authenticated: () => sink({ kind: "status", status: "authenticated" }),
    ready: (info: { phoneNumber: string; pushName?: string }) =>
      sink({ kind: "status", status: "connected", phoneNumber: info.phoneNumber, pushName: info.pushName }),
    disconnected: (why: string) => sink({ kind: "status", status: "disconnected", message: why }),
    failed: (reason: FailureReason, message: string) =>
      sink({ kind: "status", status: "failed", reason, message }),
    logged_out: () => sink({ kind: "status", status: "logged_out" }),
    pairing_code: (p: { code: string; phoneNumber: string }) => sink({ kind: "pairing_code", ...p }),
    message: (message: IncomingMessage) => sink({ kind: "message", message }),
  };
  for (const [event, handler] of Object.entries(handlers)) engine.on(event as any, handler as any);
  return () => {
    for (const [event, handler] of Object.entries(handlers)) engine.off(event as any, handler as any);
  };
}
