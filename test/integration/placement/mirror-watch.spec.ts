// The placement mirror's watch, rebuilt over a real nats-server (of this file's own, stopped after):
// a rebuild under writes must not report as deleted a workspace that still exists (each worker would
// stop and re-adopt its sessions), and a rebuilt watch that ends before its first read must not leave
// the mirror frozen. test/unit/placement/mirror-watch.spec.ts drives the orders nats.js can deliver in
// that a real server seldom gives.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type KV, type NatsConnection } from "nats";
import { startNats, type RunningServer } from "../../../src/dev/servers.ts";
import { PlacementMirror } from "../../../src/placement/mirror.ts";
import { waitFor } from "../../support/wait.ts";

const record = (node: string, pad = "") =>
  new TextEncoder().encode(JSON.stringify({ node, epoch: 1, since: 0, pad }));

describe("placement mirror: rebuilding the watch", function () {
  this.timeout(60000);
  let dir: string;
  let nats: RunningServer;
  let nc: NatsConnection; // the mirror's
  let wc: NatsConnection; // another node's, writing
  let mirror: PlacementMirror | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "sb-mirror-watch-"));
    nats = await startNats(dir);
    const opts = { servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 250 };
    nc = await connect(opts);
    wc = await connect(opts);
  });
  afterEach(() => {
    mirror?.stop();
    mirror = undefined;
  });
  after(async () => {
    await nc?.close();
    await wc?.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const buckets = (name: string) =>
    Promise.all([nc, wc].map((c) => c.jetstream().views.kv(name, { history: 1 }))) as Promise<[KV, KV]>;

  it("reports no workspace deleted while other nodes write during each rebuild", async () => {
    const [kv, writerKv] = await buckets("busy");
    const keys = Array.from({ length: 500 }, (_, i) => `ws-${i}`);
    const latest = new Map<string, number>();
    const put = async (key: string, node: string) => {
      const rev = await writerKv.put(key, record(node));
      latest.set(key, Math.max(rev, latest.get(key) ?? 0));
    };
    await Promise.all(keys.map((k) => put(k, "a")));
    mirror = new PlacementMirror();
    const removed: string[] = [];
    mirror.on("placement", (ws, entry) => {
      if (!entry) removed.push(ws);
    });
    await mirror.watch(kv);
    assert.equal(mirror.size, keys.length);

    // Four writers rewrite existing workspaces (none is ever deleted) while the watch is rebuilt, as
    // after every reconnect: a key rewritten during the first read comes after nats.js calls that read
    // complete.
    let writing = true;
    let writes = 0;
    const writers = Array.from({ length: 4 }, async (_, i) => {
      while (writing) await put(keys[(writes++ * 7 + i) % keys.length], `n${writes % 3}`);
    });
    try {
      for (let round = 0; round < 15; round++) await mirror.rewatch(kv);
    } finally {
      writing = false;
      await Promise.all(writers);
    }
    assert.ok(writes > 100, `the rebuilds ran under writes (${writes})`);
    assert.deepEqual(removed, [], "no workspace reported deleted");
    await waitFor(() => keys.every((k) => mirror!.get(k)?.revision === latest.get(k)), {
      what: "the mirror to hold every workspace's last write",
    });
  });

  it("recovers from a rebuilt watch that ends before its first read, and shows later writes", async () => {
    const [kv, writerKv] = await buckets("lost");
    // Large records make the first read long enough to pull the bucket from under it.
    const pad = "x".repeat(4000);
    const keys = Array.from({ length: 6000 }, (_, i) => `ws-${i}`);
    for (let i = 0; i < keys.length; i += 500)
      await Promise.all(keys.slice(i, i + 500).map((k) => writerKv.put(k, record("a", pad))));
    const total = keys.length * pad.length;
    mirror = new PlacementMirror();
    await mirror.watch(kv);
    assert.equal(mirror.size, keys.length);

    const failures: string[] = [];
    let rebuilt = false;
    const before = nc.stats().inBytes;
    void mirror.rewatch(kv, (err) => failures.push(err.message)).then(() => (rebuilt = true));
    await waitFor(() => nc.stats().inBytes - before > total / 10, {
      what: "the rebuilt watch to be reading",
      intervalMs: 2,
    });
    // The bucket's stream goes mid-read (with the consumer behind the watch): nats.js, missing its
    // heartbeats, tries to recreate the consumer, cannot, and ends the watch before its first read.
    const jsm = await wc.jetstreamManager();
    await jsm.streams.delete("KV_lost");
    assert.ok(nc.stats().inBytes - before < total, "the stream went before the watch read it all");
    await waitFor(() => failures.length > 0, {
      what: "the rebuild to report the watch's end",
      timeoutMs: 40000,
    });
    assert.match(failures[0], /ended before its first read/);
    assert.equal(rebuilt, false, "the rebuild goes on while the bucket is missing");

    // The bucket made again (a node starting creates it) and written to: the rebuild finds it.
    const [, again] = await buckets("lost");
    const after = await again.put("ws-after", record("b"));
    await waitFor(() => rebuilt, { what: "the rebuild to finish", timeoutMs: 20000 });
    const seen = await waitFor(() => mirror!.get("ws-after"), { what: "the record written after" });
    assert.equal(seen.revision, after);
    assert.equal(mirror.size, 1, "the records of the bucket that went are gone");
    const later = await again.put("ws-later", record("c"));
    const seenLater = await waitFor(() => mirror!.get("ws-later"), { what: "a later write" });
    assert.equal(seenLater.revision, later);
  });
});
