// The placement mirror's watch loop against the two orders in which nats.js 2.29 reports a watch's
// first read complete (jetstream/kv.js watch()): from the iterator, after the entries queued before the
// report, or synchronously inside kv.watch(), before the loop has applied any of them. A real nats-server
// seldom gives the second order (test/integration/placement/mirror-watch.spec.ts covers what it does
// give), so a scripted bucket drives the watch here, through nats.js's own queued iterator.
import { strict as assert } from "node:assert";
import type { KV, KvEntry, KvWatchOptions } from "nats";
import { QueuedIteratorImpl } from "nats/lib/nats-base-client/queued_iterator.js";
import { PlacementMirror, type PlacementMirrorOptions } from "../../../src/placement/mirror.ts";
import type { PlacementEntry } from "../../../src/placement/placement-table.ts";
import { waitFor } from "../../support/wait.ts";

/** A KV entry as the watch delivers it; `delta`: entries pending after it on the consumer. */
function entry(key: string, revision: number, node: string | null, delta: number): KvEntry {
  const value = new TextEncoder().encode(node === null ? "" : JSON.stringify({ node, epoch: 1, since: 0 }));
  return {
    bucket: "placement",
    key,
    value,
    created: new Date(),
    revision,
    delta,
    operation: node === null ? "DEL" : "PUT",
    length: value.length,
    json: <T>() => JSON.parse(new TextDecoder().decode(value)) as T,
    string: () => new TextDecoder().decode(value),
  };
}

/** One watch of the scripted bucket: what its consumer delivers, and when nats.js reports init. */
class ScriptedWatch {
  readonly queue = new QueuedIteratorImpl<KvEntry>();
  constructor(private readonly initializedFn?: () => void) {}
  deliver(...entries: KvEntry[]): void {
    for (const e of entries) {
      this.queue.push(e);
      this.queue.received++;
    }
  }
  /** As nats.js does from its message callback: the report queued behind the entries received. */
  queueInit(): void {
    this.queue.push(this.initializedFn as unknown as KvEntry);
  }
  /** As nats.js does inside kv.watch() when it already received what it counted. */
  initNow(): void {
    this.initializedFn?.();
  }
  end(err?: Error): void {
    this.queue.stop(err);
  }
}

/** A bucket whose watches run `scripts` in turn: each gets its watch before kv.watch() returns it.
 * `values`: what a read of a key answers. */
class ScriptedBucket {
  created = "2026-01-01T00:00:00Z";
  lastSeq = 0;
  readonly values = new Map<string, KvEntry>();
  readonly watches: ScriptedWatch[] = [];
  scripts: Array<(w: ScriptedWatch) => void> = [];

  asKv(): KV {
    const kv = {
      status: async () => ({ streamInfo: { created: this.created, state: { last_seq: this.lastSeq } } }),
      get: async (key: string) => this.values.get(key) ?? null,
      watch: async (opts: KvWatchOptions = {}) => {
        const w = new ScriptedWatch(opts.initializedFn);
        this.watches.push(w);
        this.scripts.shift()?.(w);
        return w.queue;
      },
    };
    return kv as unknown as KV;
  }
}

const record = (workspaceId: string, revision: number, node = "n1"): PlacementEntry => ({
  workspaceId,
  node,
  epoch: 1,
  since: 0,
  revision,
});

describe("placement/mirror: the watch loop", () => {
  let mirror: PlacementMirror;
  let bucket: ScriptedBucket;
  let removed: string[];

  function newMirror(options?: PlacementMirrorOptions): void {
    mirror = new PlacementMirror(options);
    removed = [];
    mirror.on("placement", (ws, e) => {
      if (!e) removed.push(ws);
    });
  }

  beforeEach(() => {
    bucket = new ScriptedBucket();
    newMirror();
  });
  afterEach(() => mirror.stop());

  it("applies a first read reported from inside kv.watch() before resolving, and removes nothing that exists", async () => {
    for (const [ws, rev] of [
      ["a", 1],
      ["b", 2],
      ["c", 3],
    ] as const)
      mirror.apply(ws, record(ws, rev));
    bucket.lastSeq = 4;
    // b moved to n2 while no watch stood; a write landing during the read keeps every pending above 0,
    // so nats.js reports the read complete from its count, inside kv.watch().
    bucket.scripts.push((w) => {
      w.deliver(entry("a", 1, "n1", 2), entry("b", 4, "n2", 2), entry("c", 3, "n1", 1));
      w.initNow();
    });
    await mirror.watch(bucket.asKv());
    assert.equal(mirror.get("b")?.node, "n2", "the entries read before the report are applied first");
    assert.equal(mirror.synced, true);
    bucket.watches[0].deliver(entry("d", 5, "n1", 0));
    await waitFor(() => mirror.get("d"), { what: "the write made during the read" });
    assert.deepEqual(removed, [], "no record that still exists was removed");
    assert.deepEqual([...mirror.entries()].map((e) => e.workspaceId).sort(), ["a", "b", "c", "d"]);
  });

  it("keeps a key updated during the first read, though nats.js reports the read complete before its new value", async () => {
    mirror.apply("a", record("a", 1));
    mirror.apply("b", record("b", 2));
    bucket.lastSeq = 2;
    bucket.values.set("b", entry("b", 4, "n2", 0));
    // The consumer counted a and b; b was rewritten (rev 4) before its old value was sent, so the count is
    // reached with a new key c, and b's new value comes after the report.
    let watched!: ScriptedWatch;
    bucket.scripts.push((w) => {
      watched = w;
      w.deliver(entry("a", 1, "n1", 2), entry("c", 3, "n1", 1));
      w.queueInit();
    });
    await mirror.watch(bucket.asKv());
    await waitFor(() => mirror.get("b")?.node === "n2", { what: "b's new value, read" });
    watched.deliver(entry("b", 4, "n2", 0));
    await waitFor(() => watched.queue.getProcessed() === 3, { what: "b's new value, watched" });
    assert.deepEqual(removed, []);
  });

  it("removes a record whose key is gone, once read again, but not a writer's claim newer than the watch", async () => {
    mirror.apply("a", record("a", 1));
    mirror.apply("gone", record("gone", 2));
    // This node's own claim (rev 5), applied at once, during the rebuild; the watch brings it later.
    mirror.apply("mine", record("mine", 5));
    bucket.lastSeq = 4;
    bucket.scripts.push((w) => {
      w.deliver(entry("a", 3, "n2", 1), entry("b", 4, "n1", 0));
      w.queueInit();
    });
    await mirror.watch(bucket.asKv());
    await waitFor(() => removed.length > 0, { what: "the gone record removed" });
    assert.deepEqual(removed, ["gone"]);
    assert.ok(mirror.get("mine"), "a record newer than the watch is left to it");
    assert.equal(mirror.get("a")?.node, "n2");
  });

  it("ignores a deletion older than the record it holds", async () => {
    bucket.scripts.push((w) => {
      w.deliver(entry("a", 1, "n1", 0));
      w.queueInit();
    });
    await mirror.watch(bucket.asKv());
    mirror.apply("a", record("a", 3, "n2")); // a writer's CAS after a delete and a re-create
    bucket.watches[0].deliver(entry("a", 2, null, 1), entry("a", 3, "n2", 0));
    await waitFor(() => bucket.watches[0].queue.getProcessed() === 3, { what: "the stale deletion" });
    assert.deepEqual(removed, []);
    assert.equal(mirror.get("a")?.node, "n2");
  });

  it("on an empty bucket removes the records up to the revision the watch started from, not later ones", async () => {
    mirror.apply("old", record("old", 2));
    mirror.apply("new", record("new", 8)); // written after the watch started
    bucket.lastSeq = 7;
    bucket.scripts.push((w) => w.initNow()); // nothing to read: reported inside kv.watch()
    await mirror.watch(bucket.asKv());
    await waitFor(() => removed.length > 0, { what: "the old record removed" });
    assert.deepEqual(removed, ["old"]);
    assert.ok(mirror.get("new"));
  });

  it("rebuilds, in the rewatch that built it, a watch that ends before its first read", async () => {
    mirror.apply("a", record("a", 1));
    const failures: string[] = [];
    bucket.scripts.push((w) => {
      w.deliver(entry("a", 1, "n1", 5));
      w.end(); // the subscription closed before nats.js could report the first read
    });
    bucket.scripts.push((w) => {
      w.deliver(entry("a", 1, "n1", 1), entry("b", 2, "n1", 0));
      w.queueInit();
    });
    let rebuilt = false;
    void mirror.rewatch(bucket.asKv(), (err) => failures.push(err.message)).then(() => (rebuilt = true));
    await waitFor(() => rebuilt, { what: "rewatch to finish", timeoutMs: 5000 });
    assert.deepEqual(failures, ["The placement watch ended before its first read"]);
    assert.ok(mirror.get("b"), "the watch that stands was read");
    // Later changes reach the mirror, and the next reconnect's rewatch is not refused as already running.
    bucket.watches[1].deliver(entry("c", 3, "n1", 0));
    await waitFor(() => mirror.get("c"), { what: "a later write" });
    bucket.scripts.push((w) => {
      w.deliver(entry("a", 1, "n1", 2), entry("b", 2, "n1", 1), entry("c", 4, "n2", 0));
      w.queueInit();
    });
    await mirror.rewatch(bucket.asKv());
    assert.equal(mirror.get("c")?.node, "n2");
    assert.deepEqual(removed, []);
  });

  it("fails watch() when the watch ends with an error before its first read", async () => {
    bucket.scripts.push((w) => {
      w.deliver(entry("a", 1, "n1", 5));
      // nats.js ends the iterator so when it cannot recreate the ordered consumer.
      w.end(new Error("unable to recreate ordered consumer"));
    });
    await assert.rejects(mirror.watch(bucket.asKv()), /ended before its first read: unable to recreate/);
  });

  it("gives up a watch that delivers nothing before its first read within initIdleMs", async () => {
    newMirror({ initIdleMs: 100 });
    bucket.lastSeq = 1;
    bucket.scripts.push(() => undefined); // a consumer that never sends
    await assert.rejects(mirror.watch(bucket.asKv()), /ended before its first read: no entry for 100 ms/);
    bucket.scripts.push((w) => {
      w.deliver(entry("a", 1, "n1", 0));
      w.queueInit();
    });
    await mirror.watch(bucket.asKv());
    assert.ok(mirror.get("a"));
  });

  it("replaces every record when the bucket was deleted and made again", async () => {
    bucket.lastSeq = 9;
    bucket.scripts.push((w) => {
      w.deliver(entry("a", 8, "n1", 1), entry("b", 9, "n1", 0));
      w.queueInit();
    });
    await mirror.watch(bucket.asKv());
    bucket.created = "2026-01-02T00:00:00Z";
    bucket.lastSeq = 1;
    bucket.scripts.push((w) => {
      w.deliver(entry("a", 1, "n2", 0)); // revisions start over
      w.queueInit();
    });
    await mirror.watch(bucket.asKv());
    assert.deepEqual(removed.sort(), ["a", "b"]);
    assert.equal(mirror.get("a")?.node, "n2");
    assert.equal(mirror.size, 1);
  });

  it("a start that fails (the nodes unreadable) stops the watch it began: no rebuild runs on", async () => {
    bucket.scripts.push((w) => w.initNow());
    const nodes = { kv: bucket.asKv(), keys: () => Promise.reject(new Error("no responders")) };
    await assert.rejects(mirror.start(bucket.asKv(), nodes, 100), /no responders/);
    assert.equal(bucket.watches.length, 1);
    assert.equal(bucket.watches[0].queue.done, true, "the watch was stopped");
  });
});
