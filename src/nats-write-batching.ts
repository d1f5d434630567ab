// One socket write per turn of the event loop for every NATS connection of this process, instead of
// one per message.
//
// nats.js (2.29, pinned in package.json) buffers what a connection publishes and writes the buffer at
// the end of the microtask queue that filled it. A gateway receives each HTTP request in a callback of
// its own, so under load every request became one `write` to the NATS socket, one read on nats-server
// and one on the worker, and the same again for the answer: at 64 requests in flight that was the
// gateway's largest single cost (11 % of its CPU). Flushing at `setImmediate` instead sends everything
// queued by the callbacks of one event-loop turn in one write; the routing bench went from 2,424–2,854
// to 3,393–3,722 requests/s on the same machine, CPU per request at the gateway 0.32 → 0.24 ms,
// nats-server 0.12 → 0.05 ms, each worker 0.08 → 0.04 ms. A lone message waits one turn more (well
// under a millisecond on an idle process).
//
// The change replaces how the connection's protocol handler queues a command; what it does with the
// buffer is the library's own (`flushPending`, also called at once by `flush()`, on connect, and when
// the buffer passes its limit). A close flushes what is queued first: unchanged, nats.js closes the
// socket before its own queued flush runs and drops a message published just before `close()` (the
// spec shows both). When the library no longer has the shape this relies on, nothing is changed and
// the process is warned once (a test checks that it applies).
import { ProtocolHandler } from "nats/lib/nats-base-client/protocol.js";

interface Outbound {
  length(): number;
  size(): number;
  fill(buf: Uint8Array, ...payloads: Uint8Array[]): void;
}

interface Protocol {
  outbound: Outbound;
  pendingLimit: number;
  flushPending(): void;
  sendCommand(cmd: string | Uint8Array, ...payloads: Uint8Array[]): void;
  _close(err?: Error): Promise<void>;
  /** Ours: a flush is scheduled for this turn. */
  flushScheduled?: boolean;
}

const encoder = new TextEncoder();
let applied: boolean | undefined;

/** Installs the batching once per process; returns whether it is in place. */
export function batchNatsWrites(): boolean {
  if (applied !== undefined) return applied;
  const proto = (ProtocolHandler as unknown as { prototype: Protocol } | undefined)?.prototype;
  applied =
    typeof proto?.sendCommand === "function" &&
    typeof proto.flushPending === "function" &&
    typeof proto._close === "function";
  if (!applied || !proto) {
    process.emitWarning(
      "nats.js internals are not as expected: NATS writes are not batched (src/nats-write-batching.ts)",
    );
    return false;
  }

  const flushPending = proto.flushPending;
  proto.flushPending = function (this: Protocol) {
    this.flushScheduled = false;
    flushPending.call(this);
  };
  proto.sendCommand = function (this: Protocol, cmd, ...payloads) {
    this.outbound.fill(typeof cmd === "string" ? encoder.encode(cmd) : cmd, ...payloads);
    if (this.outbound.size() >= this.pendingLimit) this.flushPending();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        if (this.flushScheduled) this.flushPending();
      });
    }
  };
  const close = proto._close;
  proto._close = function (this: Protocol, err?: Error) {
    if (this.outbound.length() > 0) this.flushPending();
    return close.call(this, err);
  };
  return true;
}
