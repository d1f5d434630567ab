// NATS servers that demand credentials (users, a token, TLS with client certificates), each started
// with a config file: nodes with the right settings (or credentials inside NATS_URL) join over the
// transporter and open the placement KV, a node with wrong ones fails at start with
// NatsAuthorizationError naming the settings, and no peer can read a secret through `$node.*`.
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ServiceBroker } from "moleculer";
import { nkeys } from "nats";
import { brokerOptions } from "../../../moleculer.config.ts";
import type { NatsSecurity } from "../../../src/config.ts";
import { startNats, type RunningServer } from "../../../src/dev/servers.ts";
import { ERR_NATS_AUTHORIZATION, NatsAuthorizationError } from "../../../src/errors.ts";
import { placementOf } from "../../../src/placement/kv.ts";
import { TestCluster } from "../../support/cluster.ts";
import { testEnv } from "../../support/env.ts";

const USER = "switchboard";
const PASSWORD = "nats-pa55word-that-must-not-leak";
const TOKEN = "nats-token-that-must-not-leak-0123";
const ADMIN_KEY = `sb_admin_${"s".repeat(40)}`;
const MONGO_SECRET = "mongo-pa55word-that-must-not-leak";
const NONE: NatsSecurity = {
  user: "",
  password: "",
  token: "",
  nkeySeed: "",
  credsFile: "",
  tlsCa: "",
  tlsCert: "",
  tlsKey: "",
};

/** A nats-server with JetStream configured by `conf`, in a folder of its own removed afterwards. */
async function natsWithConfig(name: string, conf: string): Promise<{ server: RunningServer; dir: string }> {
  const dir = join(testEnv.dataDir, `nats-${name}-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "nats.conf");
  writeFileSync(file, conf);
  return { server: await startNats(join(dir, "js"), 0, { configFile: file }), dir };
}

/** Starts a broker expected to be refused; it is stopped whatever happens. */
async function assertRefused(cfg: ReturnType<TestCluster["config"]>, secret: string): Promise<void> {
  const broker = new ServiceBroker(brokerOptions(cfg));
  try {
    await assert.rejects(broker.start(), (err: Error) => {
      assert.ok(err instanceof NatsAuthorizationError, `expected NatsAuthorizationError, got ${err.stack}`);
      assert.equal((err as NatsAuthorizationError).type, ERR_NATS_AUTHORIZATION);
      assert.match(err.message, /NATS authorization failed/);
      assert.match(err.message, /NATS_USER\/NATS_PASSWORD.*NATS_TOKEN/);
      if (secret) assert.ok(!err.message.includes(secret), "the error does not print the secret");
      return true;
    });
  } finally {
    await broker.stop().catch(() => undefined);
  }
}

describe("security: NATS with credentials", function () {
  this.timeout(60000);
  let cluster: TestCluster;
  beforeEach(() => {
    cluster = new TestCluster({}, "nauth");
  });
  afterEach(async () => {
    await cluster.stop();
  });

  describe("user and password", () => {
    let nats: { server: RunningServer; dir: string };
    before(async () => {
      nats = await natsWithConfig(
        "users",
        `authorization {\n  users: [\n    { user: "${USER}", password: "${PASSWORD}" }\n  ]\n}\n`,
      );
    });
    after(async () => {
      await nats?.server.stop();
      if (nats) rmSync(nats.dir, { recursive: true, force: true });
    });

    it("lets nodes with the right credentials join (settings or NATS_URL), transporter and KV", async () => {
      const port = nats.server.port;
      const a = cluster.node("a", [], {
        natsUrl: nats.server.url,
        nats: { ...NONE, user: USER, password: PASSWORD },
      });
      const b = cluster.node("b", [], {
        natsUrl: `nats://${USER}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${port}`,
        nats: NONE,
        adminApiKey: ADMIN_KEY,
        mongoUrl: `mongodb://admin:${MONGO_SECRET}@127.0.0.1:1/switchboard`,
      });
      await cluster.start();
      // Both opened the placement KV bucket over their own authenticated connection.
      assert.ok(placementOf(a), "a has its placement KV");
      assert.ok(placementOf(b), "b has its placement KV (credentials from NATS_URL)");
      assert.deepEqual(await a.call("$node.health", {}, { nodeID: "b" }).then((h) => typeof h), "object");

      const seen = {
        options: JSON.stringify(await a.call("$node.options", {}, { nodeID: "b" })),
        list: JSON.stringify(await a.call("$node.list", {}, { nodeID: "b" })),
        services: JSON.stringify(await a.call("$node.services", {}, { nodeID: "b" })),
        info: JSON.stringify(a.registry.nodes.get("b")?.rawInfo ?? {}),
      };
      for (const [what, text] of Object.entries(seen)) {
        for (const secret of [PASSWORD, encodeURIComponent(PASSWORD), ADMIN_KEY, MONGO_SECRET]) {
          assert.ok(!text.includes(secret), `${what} of b reveals ${secret}`);
        }
      }
      assert.match(seen.options, /"nodeID":"b"/, "the peer did get the options");
    });

    it("refuses a node with a wrong password or none at start, naming the settings", async () => {
      await assertRefused(
        cluster.config("intruder", {
          natsUrl: nats.server.url,
          nats: { ...NONE, user: USER, password: "wr0ng-pw" },
        }),
        "wr0ng-pw",
      );
      await assertRefused(cluster.config("anonymous", { natsUrl: nats.server.url, nats: NONE }), "");
    });
  });

  describe("token", () => {
    let nats: { server: RunningServer; dir: string };
    before(async () => {
      nats = await natsWithConfig("token", `authorization {\n  token: "${TOKEN}"\n}\n`);
    });
    after(async () => {
      await nats?.server.stop();
      if (nats) rmSync(nats.dir, { recursive: true, force: true });
    });

    it("joins with NATS_TOKEN or a token in NATS_URL, refuses a wrong token", async () => {
      const a = cluster.node("a", [], { natsUrl: nats.server.url, nats: { ...NONE, token: TOKEN } });
      const b = cluster.node("b", [], {
        natsUrl: `nats://${TOKEN}@127.0.0.1:${nats.server.port}`,
        nats: NONE,
      });
      await cluster.start();
      assert.ok(placementOf(a) && placementOf(b), "both opened the placement KV");
      await assertRefused(
        cluster.config("intruder", { natsUrl: nats.server.url, nats: { ...NONE, token: "not-the-token" } }),
        "not-the-token",
      );
    });
  });

  describe("NKey", () => {
    const user = nkeys.createUser();
    const seed = new TextDecoder().decode(user.getSeed());
    let nats: { server: RunningServer; dir: string };
    before(async () => {
      nats = await natsWithConfig(
        "nkey",
        `authorization {\n  users: [ { nkey: ${user.getPublicKey()} } ]\n}\n`,
      );
    });
    after(async () => {
      await nats?.server.stop();
      if (nats) rmSync(nats.dir, { recursive: true, force: true });
    });

    it("joins with NATS_NKEY_SEED, refuses another key's seed", async () => {
      const a = cluster.node("a", [], { natsUrl: nats.server.url, nats: { ...NONE, nkeySeed: seed } });
      const b = cluster.node("b", [], { natsUrl: nats.server.url, nats: { ...NONE, nkeySeed: seed } });
      await cluster.start();
      assert.ok(placementOf(a) && placementOf(b), "both opened the placement KV");
      const other = new TextDecoder().decode(nkeys.createUser().getSeed());
      await assertRefused(
        cluster.config("intruder", { natsUrl: nats.server.url, nats: { ...NONE, nkeySeed: other } }),
        other,
      );
    });
  });

  describe("TLS with client certificates", () => {
    let nats: { server: RunningServer; dir: string } | undefined;
    let pki = "";
    before(async function () {
      pki = join(testEnv.dataDir, `nats-pki-${process.pid}`);
      const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: pki, stdio: "pipe" });
      mkdirSync(pki, { recursive: true });
      try {
        ssl("version");
      } catch {
        this.skip(); // openssl is missing: no certificate can be made for this test.
      }
      ssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
      );
      for (const [name, ext] of [
        ["server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"],
        ["client", "extendedKeyUsage=clientAuth"],
      ]) {
        writeFileSync(join(pki, `${name}.ext`), ext);
        ssl(
          "req",
          "-newkey",
          "rsa:2048",
          "-nodes",
          "-keyout",
          `${name}.key`,
          "-out",
          `${name}.csr`,
          "-subj",
          `/CN=${name}`,
        );
        ssl(
          "x509",
          "-req",
          "-in",
          `${name}.csr`,
          "-CA",
          "ca.pem",
          "-CAkey",
          "ca.key",
          "-CAcreateserial",
          "-out",
          `${name}.pem`,
          "-days",
          "1",
          "-extfile",
          `${name}.ext`,
        );
      }
      nats = await natsWithConfig(
        "tls",
        `tls {\n  cert_file: "${join(pki, "server.pem")}"\n  key_file: "${join(pki, "server.key")}"\n` +
          `  ca_file: "${join(pki, "ca.pem")}"\n  verify: true\n}\n`,
      );
    });
    after(async () => {
      await nats?.server.stop();
      if (nats) rmSync(nats.dir, { recursive: true, force: true });
      if (pki) rmSync(pki, { recursive: true, force: true });
    });

    it("joins with NATS_TLS_CA/CERT/KEY over the transporter and the KV connection", async () => {
      assert.ok(nats);
      const tls = {
        tlsCa: join(pki, "ca.pem"),
        tlsCert: join(pki, "client.pem"),
        tlsKey: join(pki, "client.key"),
      };
      const a = cluster.node("a", [], { natsUrl: nats.server.url, nats: { ...NONE, ...tls } });
      const b = cluster.node("b", [], { natsUrl: nats.server.url, nats: { ...NONE, ...tls } });
      await cluster.start();
      assert.ok(placementOf(a) && placementOf(b), "both opened the placement KV over TLS");
      assert.equal(typeof (await a.call("$node.health", {}, { nodeID: "b" })), "object");
    });
  });
});
