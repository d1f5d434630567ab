// The lease against a real `nodes` bucket: a renewal is a compare-and-set on the revision the last one
// left, so a lapse the node's clock did not see (a paused VM: the key expired on the server while its
// monotonic clock stood still) fences the node and begins a new term instead of being written over; an
// answer handled after the local deadline begins a new term too; and a start that failed leaves
// nothing running that could take a lease later.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { connect, type KV, type NatsConnection } from "nats";
import { Liveness, type LivenessOptions } from "../../../src/placement/liveness.ts";
import { testEnv } from "../../support/env.ts";
import { waitFor } from "../../support/wait.ts";

/** Replaces the monotonic clock the lease reads (performance.now) until `restore()`: it can jump
 * forward, or stand still while real time (and the server's TTL) goes on, as in a paused VM. */
function controlledMonotonicClock() {
  const real = performance.now.bind(performance);
  let offset = 0;
  let frozenAt: number | undefined;
  const now = () => frozenAt ?? real() + offset;
  performance.now = now;
  return {
    advance: (ms: number) => void (offset += ms),
    freeze: () => void (frozenAt = now()),
    /** Goes on from the reading it stood at, as CLOCK_MONOTONIC does when a VM resumes. */
    thaw: () => {
      offset = (frozenAt ?? now()) - real();
      frozenAt = undefined;
    },
    restore: () => void Reflect.deleteProperty(performance, "now"),
  };
}

describe("placement: the liveness lease on a real nodes bucket", () => {
  let nc: NatsConnection;
  /** A second client: what other nodes and the server see and do. */
  let other: NatsConnection;
  const running: Liveness[] = [];
  const buckets: string[] = [];

  before(async () => {
    nc = await connect({ servers: testEnv.natsUrl });
    other = await connect({ servers: testEnv.natsUrl });
  });

  afterEach(async () => {
    await Promise.all(running.splice(0).map((l) => l.stop()));
    const jsm = await other.jetstreamManager();
    await Promise.all(buckets.splice(0).map((b) => jsm.streams.delete(`KV_${b}`).catch(() => undefined)));
  });

  after(async () => {
    await nc?.close();
    await other?.close();
  });

  const bucket = async (ttlMs: number) => {
    const name = `lv${randomBytes(4).toString("hex")}_nodes`;
    buckets.push(name);
    const kv = await nc.jetstream().views.kv(name, { history: 1, ttl: ttlMs });
    const seen = await other.jetstream().views.kv(name);
    return { name, kv, seen };
  };

  const liveness = (kv: KV, opts: Partial<LivenessOptions> = {}) => {
    const fences: number[] = [];
    const terms: number[] = [];
    let writes = 0;
    const nodeId = `n${randomBytes(3).toString("hex")}`;
    const live = new Liveness({
      kv,
      nodeId,
      renewMs: 100,
      ttlMs: 10000,
      describe: () => {
        writes++;
        return { services: ["session"], capacity: 1, sessions: 0, draining: false };
      },
      onFence: () => void fences.push(live.term),
      onLease: (t) => void terms.push(t),
      ...opts,
    });
    running.push(live);
    return { live, nodeId, fences, terms, writes: () => writes };
  };

  it("a key that expired on the server while the node's clock stood still (a paused VM) fences the node: a new term, not a renewal of the old one", async () => {
    const ttl = 1000;
    const { kv, seen } = await bucket(ttl);
    const node = liveness(kv, { ttlMs: ttl });
    await node.live.start();
    assert.deepEqual(node.terms, [1]);
    const clock = controlledMonotonicClock();
    try {
      // The VM pauses: no renewal runs and the monotonic clock stands still, so nothing local ever
      // reaches the lease's deadline, while the server drops the key at its TTL.
      node.live.pause();
      clock.freeze();
      await waitFor(async () => (await seen.get(node.nodeId)) === null, {
        what: "the key to expire on the server",
        timeoutMs: 10000,
      });
      assert.ok(node.live.isCurrent(), "by its own clock the lease is still current");
      // The VM resumes: the next renewal finds the key gone.
      clock.thaw();
      node.live.resume();
      await waitFor(() => node.fences.length === 1 && node.live.isCurrent(), {
        what: "the fence and a new lease",
        timeoutMs: 5000,
      });
    } finally {
      clock.restore();
    }
    assert.deepEqual(node.fences, [1], "the sessions of term 1 were stopped");
    assert.deepEqual(node.terms, [1, 2]);
    assert.ok(await seen.get(node.nodeId), "the new term's key");
  });

  it("a key removed on the server fences the node at its next renewal, and it takes a new term", async () => {
    const { kv, seen } = await bucket(60000);
    const node = liveness(kv);
    const { nodeId } = node;
    await node.live.start();
    await waitFor(() => node.writes() >= 3, { what: "renewals" });
    assert.deepEqual(node.fences, []);
    await seen.delete(nodeId);
    await waitFor(() => node.fences.length === 1, { what: "the fence", timeoutMs: 5000 });
    await waitFor(() => node.terms.length === 2 && node.live.isCurrent(), { what: "a new lease" });
    assert.deepEqual(node.fences, [1]);
    assert.deepEqual(node.terms, [1, 2]);
    // Renewed in the new term as before, with no further fence.
    const entry = await waitFor(async () => {
      const e = await seen.get(nodeId);
      return e?.operation === "PUT" ? e : null;
    });
    const writes = node.writes();
    await waitFor(() => node.writes() >= writes + 3, { what: "renewals in the new term" });
    assert.ok((await seen.get(nodeId))!.revision > entry.revision);
    assert.deepEqual(node.fences, [1]);
  });

  it("a write of its key the node did not wait for (a renewal that landed after its timeout) is no lapse: no fence", async () => {
    const { kv, seen } = await bucket(60000);
    const node = liveness(kv);
    await node.live.start();
    await waitFor(() => node.writes() >= 3, { what: "renewals" });
    // The key moves on to a revision the node never saw, with no gap: what its own renewal, given up
    // on and landing later, leaves. Here a second client writes it.
    const entry = (await seen.get(node.nodeId))!;
    await seen.put(node.nodeId, entry.value);
    const writes = node.writes();
    await waitFor(() => node.writes() >= writes + 5, { what: "renewals after it" });
    assert.deepEqual(node.fences, []);
    assert.deepEqual(node.terms, [1]);
    assert.ok(node.live.isCurrent());
  });

  it("a renewal answered after the local deadline, before the overdue fence timer ran, begins a new term", async () => {
    const { kv } = await bucket(60000);
    const clock = controlledMonotonicClock();
    let jumpOnWrite = 0;
    // No timed renewal during the test: the one renewal is a touch().
    const node = liveness(kv, {
      renewMs: 60000,
      ttlMs: 10000,
      describe: () => {
        clock.advance(jumpOnWrite);
        return { services: [], capacity: 1, sessions: 0, draining: false };
      },
    });
    try {
      await node.live.start();
      // The deadline is the start's send + 9750 ms. The renewal leaves 5 s later, and its answer is
      // handled 5 s after that (the event loop was busy): past the deadline, while the fence timer, on
      // real time, has not run.
      clock.advance(5000);
      jumpOnWrite = 5000;
      assert.ok(await node.live.touch(), "the renewal was written");
      jumpOnWrite = 0;
      assert.deepEqual(node.fences, [1], "fenced: the lease lapsed before the answer was handled");
      assert.deepEqual(node.terms, [1, 2]);
      assert.ok(node.live.isCurrent());
    } finally {
      clock.restore();
    }
  });

  it("a start that failed takes no lease later: its renewals stopped", async () => {
    const { name, kv, seen } = await bucket(60000);
    // The bucket is gone when the node starts (its first write fails), and back right after.
    await other.jetstreamManager().then((jsm) => jsm.streams.delete(`KV_${name}`));
    const failed = liveness(kv, { renewMs: 50 });
    await assert.rejects(failed.live.start(), /could not take the liveness lease/);
    await other.jetstream().views.kv(name, { history: 1, ttl: 60000 });
    // While a node started on the bucket now renews 20 times, the failed one writes nothing more.
    const control = liveness(kv, { renewMs: 50 });
    await control.live.start();
    await waitFor(() => control.writes() >= 20, { what: "the control node's renewals" });
    assert.equal(failed.writes(), 1, "renewals after the failed start");
    assert.deepEqual(failed.terms, []);
    assert.equal(await seen.get(failed.nodeId), null, "the failed node's key");
    assert.ok(!failed.live.isCurrent());
  });
});
