// The lease: renewed on time it stays current; when renewals stop completing, the node fences itself
// before the server-side TTL could expire, and a later renewal starts a new term.
import { strict as assert } from "node:assert";
import type { KV } from "nats";
import { Liveness } from "../../../src/placement/liveness.ts";
import { waitFor } from "../../support/wait.ts";

/** `puts` counts every write of the lease: a term's first (put) and its renewals (update). */
function fakeKv(state: { hang: boolean; puts: number }): KV {
  const write = async () => {
    state.puts++;
    if (state.hang) await new Promise(() => undefined);
    return state.puts;
  };
  return { put: write, update: write, delete: async () => undefined } as unknown as KV;
}

describe("placement/liveness", () => {
  it("fences before the lease can expire when renewals hang, and starts a new term when they return", async () => {
    const state = { hang: false, puts: 0 };
    const fences: number[] = [];
    const terms: number[] = [];
    // The default fence margin (250 ms) fits in this TTL: the fence is due 250 ms before expiry, so a
    // timer late by less than that on a loaded machine still fences in time. (At 400 ms the margin was
    // a quarter, 100 ms, and a run under stress-ng fenced 35 ms after expiry.)
    const ttl = 2000;
    const live = new Liveness({
      kv: fakeKv(state),
      nodeId: "n1",
      renewMs: 100,
      ttlMs: ttl,
      describe: () => ({ services: ["session"], capacity: 1, sessions: 0, draining: false }),
      onFence: () => void fences.push(Date.now()),
      onLease: (t) => void terms.push(t),
    });
    await live.start();
    assert.ok(live.isCurrent());
    await waitFor(() => state.puts >= 4, { what: "renewals" });
    assert.ok(live.isCurrent());
    const lastSent = Date.now();
    state.hang = true;
    await waitFor(() => fences.length === 1, { what: "the fence", timeoutMs: 4000, intervalMs: 5 });
    assert.ok(!live.isCurrent());
    // Fenced before the earliest server-side expiry (last renewal sent + TTL).
    assert.ok(fences[0] < lastSent + ttl, `fenced ${fences[0] - lastSent} ms after the last renewal`);
    state.hang = false;
    await waitFor(() => live.isCurrent(), { what: "a new lease", timeoutMs: 2000 });
    assert.deepEqual(terms, [1, 2]);
    await live.stop();
    assert.ok(!live.isCurrent());
  });

  it("a wall clock set back does not keep a lapsed lease current: the deadlines are on a monotonic clock", async () => {
    const state = { hang: false, puts: 0 };
    const fences: number[] = [];
    const live = new Liveness({
      kv: fakeKv(state),
      nodeId: "n4",
      renewMs: 100,
      ttlMs: 2000,
      describe: () => ({ services: [], capacity: 1, sessions: 0, draining: false }),
      onFence: () => void fences.push(performance.now()),
    });
    const wallClock = Date.now;
    try {
      await live.start();
      await waitFor(() => state.puts >= 2, { what: "renewals" });
      const lastSent = performance.now();
      // Renewals stop completing, and the system clock steps back a minute (an NTP step).
      state.hang = true;
      Date.now = () => wallClock() - 60_000;
      await waitFor(() => fences.length === 1, { what: "the fence", timeoutMs: 4000, intervalMs: 5 });
      assert.ok(fences[0] < lastSent + 2000, `fenced ${fences[0] - lastSent} ms after the last renewal`);
      assert.ok(!live.isCurrent());
    } finally {
      Date.now = wallClock;
      state.hang = false;
      await live.stop();
    }
  });

  it("pause() lets the lease lapse (test hook) and resume() takes a new one", async () => {
    const state = { hang: false, puts: 0 };
    let fenced = false;
    const live = new Liveness({
      kv: fakeKv(state),
      nodeId: "n2",
      renewMs: 30,
      ttlMs: 200,
      describe: () => ({ services: [], capacity: 1, sessions: 0, draining: false }),
      onFence: () => void (fenced = true),
    });
    await live.start();
    live.pause();
    await waitFor(() => fenced, { what: "fence after pause", timeoutMs: 2000 });
    live.resume();
    await waitFor(() => live.isCurrent(), { what: "lease after resume", timeoutMs: 2000 });
    assert.equal(live.term, 2);
    await live.stop();
  });

  it("touch() during a renewal writes again once it is done: the record the caller changed is published", async () => {
    const written: boolean[] = [];
    let release: () => void = () => undefined;
    let hold = false;
    const write = async (_key: string, data: Uint8Array) => {
      const draining = (JSON.parse(new TextDecoder().decode(data)) as { draining: boolean }).draining;
      if (hold) await new Promise<void>((resolve) => (release = resolve));
      written.push(draining);
      return written.length;
    };
    const kv = { put: write, update: write, delete: async () => undefined } as unknown as KV;
    let draining = false;
    const live = new Liveness({
      kv,
      nodeId: "n5",
      renewMs: 60_000,
      ttlMs: 120_000,
      describe: () => ({ services: ["session"], capacity: 1, sessions: 0, draining }),
      onFence: () => undefined,
    });
    try {
      await live.start();
      hold = true;
      const renewal = live.touch(); // its record built before the drain
      hold = false;
      draining = true; // drain(): the flag, then touch()
      const touched = live.touch();
      release();
      assert.equal(await renewal, true);
      assert.equal(await touched, true, "written, not skipped");
      assert.deepEqual(written, [false, false, true]);
    } finally {
      release();
      await live.stop();
    }
  });

  it("keeps the fence margin at the stop budget, and widens it when a fence took longer than half of it", async () => {
    const state = { hang: false, puts: 0 };
    let stopMs = 0;
    const live = new Liveness({
      kv: fakeKv(state),
      nodeId: "n3",
      renewMs: 50,
      ttlMs: 2000,
      stopBudgetMs: 100,
      describe: () => ({ services: [], capacity: 1, sessions: 0, draining: false }),
      onFence: () => new Promise<void>((r) => setTimeout(r, stopMs)),
    });
    assert.equal(live.fenceMarginMs, 100);
    live.stopTook(40);
    assert.equal(live.fenceMarginMs, 100, "a stop well inside the margin changes nothing");
    await live.start();
    stopMs = 150;
    live.pause();
    await waitFor(() => live.fenceMarginMs > 100, { what: "the margin to widen", timeoutMs: 5000 });
    // Twice the real stop time: timers may run late, or fire a millisecond early by the monotonic
    // clock the stop is measured on (a 150 ms timer measured 149.5 ms under load).
    assert.ok(live.fenceMarginMs >= 296, `margin ${live.fenceMarginMs} ms`);
    live.stopTook(5000);
    assert.equal(live.fenceMarginMs, 500, "never more than a quarter of the TTL");
    await live.stop();
  });
});
