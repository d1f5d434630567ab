// The placement mirror's watch must come back after NATS does: a node whose watch stayed down would
// never see a placement change again (no adoption of handed-off workspaces, no fencing of lost ones).
// A nats-server of this test's own, restarted in place on the same port and store.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startNats, type RunningServer } from "../../../src/dev/servers.ts";
import { ClusterPlacement } from "../../../src/placement/kv.ts";
import { testConfig } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";

describe("placement mirror: the watch is rebuilt until NATS is back", function () {
  this.timeout(60000);
  let dir: string;
  let port: number;
  let nats: RunningServer | undefined;
  let placement: ClusterPlacement | undefined;
  let writer: ClusterPlacement | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "sb-mirror-"));
    port = await freePort();
    nats = await startNats(dir, port);
  });
  after(async () => {
    await placement?.close();
    await writer?.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps trying while NATS is down, then sees a placement change made after it came back", async () => {
    const cfg = testConfig({ natsUrl: nats!.url, namespace: "mirror", nodeId: "m1" });
    placement = await ClusterPlacement.connect(cfg);
    await placement.table.claim("ws-before", "m1", null);
    await waitFor(() => placement!.mirror.get("ws-before"), { what: "the first record in the mirror" });

    await nats!.stop();
    const failures: string[] = [];
    const rebuilt = placement.mirror.rewatch(placement.table.kv, (err) => failures.push(err.message));
    await waitFor(() => failures.length >= 1, {
      what: "a failed rebuild while NATS is down",
      timeoutMs: 30000,
    });
    nats = await startNats(dir, port);
    await rebuilt;
    assert.ok(failures.length >= 1, "the rebuild failed at least once, and was tried again");

    // Written by another connection after the restart: only a standing watch shows it here.
    writer = await ClusterPlacement.connect({ ...cfg, nodeId: "m2" });
    const entry = await writer.table.claim("ws-after", "m2", null);
    assert.ok(entry, "claimed after the restart");
    const seen = await waitFor(() => placement!.mirror.get("ws-after"), {
      what: "the mirror to see a record written after NATS came back",
    });
    assert.equal(seen.node, "m2");
    assert.equal(seen.epoch, entry.epoch);
  });
});
