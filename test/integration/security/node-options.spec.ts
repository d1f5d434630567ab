// Any peer on the bus can call `$node.options` of any node: what it gets must hold no secret (the
// admin key, the database URL, the NATS URL with its credentials), while the node itself still reads
// its whole configuration.
import { strict as assert } from "node:assert";
import { configOf } from "../../../src/config.ts";
import { TestCluster } from "../../support/cluster.ts";

describe("security: broker options hold no secret", () => {
  let cluster: TestCluster;
  afterEach(async () => cluster?.stop());

  it("$node.options of a node, asked by a peer, names no admin key, database URL or NATS URL", async () => {
    const adminApiKey = `sb_admin_${"k".repeat(40)}`;
    cluster = new TestCluster({}, "opts");
    const target = cluster.node("target", [], { adminApiKey });
    const peer = cluster.node("peer", []);
    await cluster.start();
    await peer.waitForServices([{ name: "$node" }], 10000).catch(() => undefined);
    const options = await peer.call("$node.options", {}, { nodeID: "target" });
    const text = JSON.stringify(options);
    const cfg = configOf(target);
    assert.equal(cfg.adminApiKey, adminApiKey, "the node itself still reads its configuration");
    assert.ok(text.includes('"nodeID":"target"'), "the peer got the options");
    for (const secret of [adminApiKey, cfg.mongoUrl, cfg.natsUrl])
      assert.ok(
        !text.includes(secret),
        `$node.options shows ${secret}: ${text.slice(Math.max(0, text.indexOf(secret) - 300), text.indexOf(secret) + 100)}`,
      );
  });
});
