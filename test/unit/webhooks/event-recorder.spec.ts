// How a webhooks node puts account events in the outbox (src/webhooks/event-recorder.ts) with its log
// reader (src/webhooks/log-tail.ts) over an in-memory log: an event that is not logged (a QR code)
// takes its place among the logged ones as the node heard them.
import { strict as assert } from "node:assert";
import { cursorOf } from "../../../src/store/events-repo.ts";
import type { RecordedEvent } from "../../../src/store/webhook-outbox-recorder.ts";
import { EventRecorder } from "../../../src/webhooks/event-recorder.ts";
import { LogTail } from "../../../src/webhooks/log-tail.ts";
import { waitFor } from "../../support/wait.ts";
import { MemoryCursors, MemoryLog } from "./memory-log.ts";

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("webhooks/event-recorder", () => {
  let log: MemoryLog;
  let tail: LogTail;
  let recorder: EventRecorder;
  /** What went into the outbox, in order: `event` or `event@seq` for a logged one. */
  let outbox: string[];

  const nameOf = (ev: RecordedEvent) => {
    const cursor = (ev.payload as { cursor?: string }).cursor;
    return cursor ? `${ev.event}@${cursor}` : ev.event;
  };

  beforeEach(async () => {
    log = new MemoryLog();
    outbox = [];
    recorder = new EventRecorder({
      endpoints: { enabledFor: async () => [{ _id: "wh_1", events: ["*"] }] },
      outbox: {
        async record(ev) {
          outbox.push(nameOf(ev));
          return [];
        },
        async recordMany(items) {
          for (const { ev } of items) outbox.push(nameOf(ev));
          return [];
        },
      },
      loop: { holds: () => true, notify() {} },
      tell() {},
      logger: quiet,
      endpointCacheMs: 60_000,
    });
    tail = new LogTail(
      log as any,
      new MemoryCursors() as any,
      (docs) => recorder.recordLogged(docs),
      // No poll during a test: only offers and wakes read.
      { pollMs: 60_000, discoverMs: 60_000 },
      quiet as any,
    );
    recorder.attach(tail, { holds: () => true, recordsUnlogged: async () => true });
    await tail.start();
  });
  afterEach(() => tail.stop());

  /** A status the owner logged at `seq` and broadcast with its cursor. */
  function logStatus(seq: number, status: string) {
    const payload = { workspaceId: "ws", accountId: "acc", status, at: new Date(seq).toISOString() };
    log.docs.push({
      _id: `ws|${seq}`,
      workspaceId: "ws",
      seq,
      event: "account.status",
      payload,
      at: new Date(),
    });
    return recorder.onAccountEvent("account.status", { ...payload, cursor: cursorOf(seq) });
  }

  it("a QR code is recorded after the events heard before it, and before one heard after it while the log is read", async () => {
    log.readDelayMs = 50;
    void logStatus(1, "qr_scanning");
    const qr = recorder.onAccountEvent("account.qr", { workspaceId: "ws", accountId: "acc", qr: "2@abc" });
    await sleep(10);
    void logStatus(2, "authenticated");
    await qr;
    await waitFor(() => outbox.length === 3, { what: "three events recorded" });
    assert.deepEqual(outbox, ["account.status@1", "account.qr", "account.status@2"]);
  });
});
