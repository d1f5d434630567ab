// The mirror's poll of the live nodes must end even when a lease expires while it reads: a poll that
// never ends stops the poll loop, and the mirror goes on seeing the nodes of then (after an outage of
// every lease, the first node back saw nobody else for good, and took every workspace). Leases of a
// few hundred ms on a nats-server of this file's own, polled back to back across their expiries.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type KV, type NatsConnection } from "nats";
import { startNats, type RunningServer } from "../../../src/dev/servers.ts";
import { bucketKeys } from "../../../src/placement/bucket-keys.ts";
import { PlacementMirror } from "../../../src/placement/mirror.ts";

/** Long enough that a stalled process (CI beside CPU burners) still sees each lease before it expires. */
const TTL_MS = 1000;
const ROUNDS = 12;
/** A poll of one key answers in a few ms; one this late waits for a message that will never come. */
const STUCK_MS = 3000;

describe("placement mirror: polling the live nodes while leases expire", function () {
  this.timeout(120000);
  let dir: string;
  let nats: RunningServer;
  let nc: NatsConnection;
  let mirror: PlacementMirror | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "sb-nodes-poll-"));
    nats = await startNats(dir);
    nc = await connect({ servers: nats.url });
  });
  after(async () => {
    mirror?.stop();
    await nc?.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("every poll ends, and the mirror sees each lease come and go", async () => {
    const js = nc.jetstream();
    const placementKv = await js.views.kv("poll-placement", { history: 1 });
    const nodesKv: KV = await js.views.kv("poll-nodes", { history: 1, ttl: TTL_MS });
    mirror = new PlacementMirror();
    const m = mirror;
    // A long loop period and no timed poll: only this test's polls read the bucket.
    await m.start(
      placementKv,
      { kv: nodesKv, keys: bucketKeys(await nc.jetstreamManager(), "poll-nodes") },
      60000,
    );

    let polls = 0;
    const pollOnce = async () => {
      let timer: NodeJS.Timeout | undefined;
      const stuck = new Promise<"stuck">((resolve) => (timer = setTimeout(() => resolve("stuck"), STUCK_MS)));
      const result = await Promise.race([m.pollNodes().then(() => "done" as const), stuck]);
      clearTimeout(timer);
      polls++;
      return result;
    };
    for (let round = 0; round < ROUNDS; round++) {
      await nodesKv.put(
        "n1",
        new TextEncoder().encode(JSON.stringify({ nodeId: "n1", renewedAt: Date.now() })),
      );
      assert.equal(await pollOnce(), "done", `round ${round}: the poll after the lease was written`);
      assert.ok(m.isLive("n1"), `round ${round}: the lease just written is live`);
      // Two polls at a time, back to back, until the server has dropped the key.
      const deadline = Date.now() + 10 * TTL_MS;
      while (m.isLive("n1")) {
        assert.ok(Date.now() < deadline, `round ${round}: the lease never expired`);
        const results = await Promise.all([pollOnce(), pollOnce()]);
        assert.deepEqual(results, ["done", "done"], `round ${round}: a poll during the expiry never ended`);
      }
    }
    assert.ok(polls > ROUNDS * 4, `polled ${polls} times across ${ROUNDS} expiries`);
  });
});
