// The `nodes` bucket keeps the TTL it was created with; a lease counts on a node's key staying there
// as long as the node thinks. A node whose LEASE_TTL_MS is longer than the bucket's raises the bucket
// to it; one whose LEASE_TTL_MS is shorter fences itself at its own TTL (never later than the server
// drops its key) and warns that others notice its death only at the bucket's.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect } from "nats";
import { bucketName } from "../../../src/config.ts";
import { startNats } from "../../../src/dev/servers.ts";
import { ClusterPlacement } from "../../../src/placement/kv.ts";
import { testConfig } from "../../support/cluster.ts";
import { testEnv } from "../../support/env.ts";

describe("placement: the nodes bucket's TTL and the lease's", () => {
  const open: ClusterPlacement[] = [];
  after(async () => Promise.all(open.splice(0).map((p) => p.close())));

  it("a longer LEASE_TTL_MS raises the bucket; a shorter one is used as it is, with a warning", async () => {
    const namespace = `ttl${randomBytes(3).toString("hex")}`;
    const connect = async (nodeId: string, leaseTtlMs: number, warnings: string[] = []) => {
      const p = await ClusterPlacement.connect(
        testConfig({ namespace, nodeId, leaseTtlMs, leaseRenewMs: 100 }),
        { warn: (...a: unknown[]) => void warnings.push(a.join(" ")) },
      );
      open.push(p);
      return p;
    };
    const first = await connect("t1", 1000);
    assert.equal((await first.nodesKv.status()).ttl, 1000, "created with the first node's TTL");
    assert.equal(first.leaseTtlMs, 1000);

    const raised = await connect("t2", 5000);
    assert.equal((await raised.nodesKv.status()).ttl, 5000, "raised to the longer LEASE_TTL_MS");
    assert.equal(raised.leaseTtlMs, 5000);

    const warnings: string[] = [];
    const shorter = await connect("t3", 2000, warnings);
    assert.equal((await shorter.nodesKv.status()).ttl, 5000, "never lowered under running nodes");
    assert.equal(shorter.leaseTtlMs, 2000, "its own, shorter TTL: it fences itself first");
    assert.match(warnings.join("\n"), /keeps keys 5000 ms, longer than LEASE_TTL_MS 2000 ms/);
  });

  it("a node not allowed to change the bucket fences itself at the bucket's shorter TTL", async () => {
    // A nats-server of its own: an admin user, and one denied stream updates.
    const dir = join(testEnv.dataDir, `nodes-ttl-${randomBytes(3).toString("hex")}`);
    mkdirSync(dir, { recursive: true });
    const conf = join(dir, "nats.conf");
    writeFileSync(
      conf,
      `authorization { users = [
        { user: admin, password: admin-pw-0123 }
        { user: limited, password: limited-pw-0123, permissions: { publish: { allow: [">"], deny: ["$JS.API.STREAM.UPDATE.>"] } } }
      ] }\n`,
    );
    const nats = await startNats(join(dir, "data"), 0, { configFile: conf });
    try {
      const as = (
        user: string,
        nodeId: string,
        leaseTtlMs: number,
        warnings: string[] = [],
        namespace = "lim",
      ) => {
        const cfg = testConfig({
          natsUrl: nats.url,
          namespace,
          nodeId,
          leaseTtlMs,
          leaseRenewMs: 100,
        });
        return ClusterPlacement.connect(
          { ...cfg, nats: { ...cfg.nats, user, password: `${user}-pw-0123` } },
          { warn: (...a: unknown[]) => void warnings.push(a.join(" ")) },
        ).then((p) => (open.push(p), p));
      };
      await as("admin", "a1", 1000);
      const warnings: string[] = [];
      const limited = await as("limited", "l1", 5000, warnings);
      assert.equal(limited.leaseTtlMs, 1000, "the bucket's TTL, not its own longer one");
      assert.equal((await limited.nodesKv.status()).ttl, 1000);
      assert.match(warnings.join("\n"), /could not be raised to LEASE_TTL_MS 5000 ms/);

      // A bucket that keeps keys for ever (made by hand, without a TTL), which this node may not
      // change: it refuses to start, since a dead node's lease would never lapse.
      const admin = await connect({ servers: nats.url, user: "admin", pass: "admin-pw-0123" });
      try {
        const cfg = testConfig({ namespace: "forever" });
        await admin.jetstream().views.kv(bucketName(cfg, "nodes"), { history: 1 });
      } finally {
        await admin.close();
      }
      await assert.rejects(
        as("limited", "l2", 5000, [], "forever"),
        /keeps keys for ever and could not be given/,
      );
    } finally {
      await Promise.all(open.splice(0).map((p) => p.close()));
      await nats.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
