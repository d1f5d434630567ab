// Mocha root hooks: one real nats-server (JetStream) and one real MongoDB-wire server (FerretDB) for
// the whole run, on free ports in a temporary folder, unless NATS_URL / MONGO_URL are given.
// Specs read the URLs from test/support/env.ts.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMongoWire, startNats, type RunningServer } from "../../src/dev/servers.ts";
import { testEnv } from "./env.ts";

const started: RunningServer[] = [];
let dataDir = "";

// Test receivers listen on loopback, which webhooks refuse unless allowed.
process.env.WEBHOOK_ALLOW_PRIVATE ??= "127.0.0.0/8,::1";
// Every test client is 127.0.0.1; the failed-auth limit has a spec of its own.
process.env.AUTH_FAILURES_PER_MINUTE ??= "0";
// Auth state and webhook secrets are sealed at rest in every test, as in production (a key per run).
process.env.SECRETS_KEY ??= randomBytes(32).toString("hex");
// Every test node holds the admin key, so it signs the admin calls it makes over the bus, as a gateway
// does (src/admin-signature.ts); the admin-signature spec starts nodes without it.
process.env.ADMIN_API_KEY ??= `sb_admin_test_${randomBytes(24).toString("base64url")}`;

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(60000);
    dataDir = mkdtempSync(join(tmpdir(), "switchboard-test-"));
    testEnv.dataDir = dataDir;
    if (process.env.NATS_URL) testEnv.natsUrl = process.env.NATS_URL;
    else {
      const nats = await startNats(join(dataDir, "nats"));
      started.push(nats);
      testEnv.nats = nats;
      testEnv.natsUrl = nats.url;
    }
    if (process.env.MONGO_URL) testEnv.mongoUrl = process.env.MONGO_URL;
    else {
      const mongo = await startMongoWire(join(dataDir, "mongo"));
      started.push(mongo);
      testEnv.mongo = mongo;
      testEnv.mongoUrl = mongo.url;
    }
  },
  async afterAll(this: Mocha.Context) {
    this.timeout(30000);
    await Promise.all(started.map((s) => s.stop()));
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  },
};
