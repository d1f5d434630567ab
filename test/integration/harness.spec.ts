// Proves the harness for real: brokers over the real NATS, JetStream KV compare-and-set, MongoDB via
// the driver (unique index, GridFS), headless Chromium rendering a page served here.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { MongoClient } from "mongodb";
import { connect, StringCodec, type NatsConnection } from "nats";
import { TestCluster } from "../support/cluster.ts";
import { testEnv, mongoUrlFor, testSecrets } from "../support/env.ts";
import { GridFsAuthStore } from "../../src/store/auth-store.ts";
import { config } from "../../src/config.ts";
import { chromiumBaseFlags } from "../../src/engines/webjs/flags.ts";

describe("harness: real NATS, MongoDB-wire server and Chromium", () => {
  it("three brokers over the real NATS discover each other and call across", async () => {
    const cluster = new TestCluster();
    const names = ["a", "b", "c"];
    for (const n of names) {
      cluster.node(n, [{ name: `echo-${n}`, actions: { who: (ctx: any) => ctx.broker.nodeID } }]);
    }
    try {
      await cluster.start();
      for (const b of cluster.brokers) {
        for (const n of names) assert.equal(await b.call(`echo-${n}.who`), n);
      }
    } finally {
      await cluster.stop();
    }
  });

  describe("JetStream KV", () => {
    let nc: NatsConnection;
    before(async () => {
      nc = await connect({ servers: testEnv.natsUrl });
    });
    after(async () => nc.close());

    it("create fails on an existing key and update fails on a stale revision", async () => {
      const kv = await nc.jetstream().views.kv(`harness_${randomBytes(3).toString("hex")}`, { history: 1 });
      const sc = StringCodec();
      const rev1 = await kv.create("ws1", sc.encode("a"));
      await assert.rejects(kv.create("ws1", sc.encode("b")), /wrong last sequence|key exists/i);
      const rev2 = await kv.update("ws1", sc.encode("c"), rev1);
      assert.ok(rev2 > rev1);
      await assert.rejects(kv.update("ws1", sc.encode("d"), rev1), /wrong last sequence/i);
      assert.equal(sc.decode((await kv.get("ws1"))!.value), "c");
    });
  });

  describe("MongoDB through the driver", () => {
    let client: MongoClient;
    before(async () => {
      client = await MongoClient.connect(mongoUrlFor(`harness${randomBytes(3).toString("hex")}`));
    });
    after(async () => client.close());

    it("inserts, finds, and rejects a duplicate on a unique index with E11000", async () => {
      const col = client.db().collection("things");
      await col.createIndex({ key: 1 }, { unique: true });
      await col.insertOne({ key: "k1", n: 1 });
      assert.equal((await col.findOne({ key: "k1" }))?.n, 1);
      await assert.rejects(col.insertOne({ key: "k1", n: 2 }), (err: any) => err.code === 11000);
    });

    it("a 5 MB GridFS upload reads back byte-identical", async () => {
      const store = new GridFsAuthStore(client.db(), testSecrets());
      const blob = randomBytes(5 * 1024 * 1024);
      await store.save("s1", blob);
      const back = await store.load("s1");
      assert.ok(back && back.equals(blob), "blob differs after the round trip");
      await store.delete("s1");
      assert.equal(await store.load("s1"), null);
    });

    it("the embedded FerretDB runs with Go's GC target FERRETDB_GOGC (1000 by default)", function () {
      // MONGO_URL set: the suite runs against a server it did not start.
      if (!testEnv.mongo?.process.pid) this.skip();
      const environ = readFileSync(`/proc/${testEnv.mongo.process.pid}/environ`, "utf8").split("\0");
      assert.ok(environ.includes(`GOGC=${process.env.FERRETDB_GOGC || "1000"}`), environ.join(" "));
    });
  });

  describe("headless Chromium", () => {
    let server: Server;
    let port = 0;
    before(async () => {
      server = createServer((_req, res) => {
        res.setHeader("content-type", "text/html");
        res.end("<html><body><h1 id=t>switchboard harness</h1></body></html>");
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
      port = (server.address() as { port: number }).port;
    });
    after(() => server.close());

    it("launches and renders a page served by the test", async function () {
      this.timeout(30000);
      const out = await new Promise<string>((resolve, reject) => {
        const child = spawn(config.chromiumPath, [
          "--headless",
          ...chromiumBaseFlags(),
          `--user-data-dir=${testEnv.dataDir}/chromium-harness`,
          "--dump-dom",
          `http://127.0.0.1:${port}/`,
        ]);
        let stdout = "";
        child.stdout.on("data", (b) => (stdout += b));
        child.on("error", reject);
        child.on("exit", (code) =>
          code === 0 ? resolve(stdout) : reject(new Error(`chromium exited ${code}`)),
        );
      });
      assert.match(out, /<h1 id="t">switchboard harness<\/h1>/);
    });
  });
});
