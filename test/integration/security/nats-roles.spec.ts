// deploy/nats.conf, the NATS configuration docker-compose.yml mounts, on a real nats-server: the
// gateway, worker and operator users join the `switchboard` namespace over the transporter and open
// the placement KV; only a worker may write the placement table; a user that is not in the file is
// refused at start.
import { strict as assert } from "node:assert";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ServiceBroker } from "moleculer";
import { connect } from "nats";
import { brokerOptions } from "../../../moleculer.config.ts";
import type { NatsSecurity } from "../../../src/config.ts";
import { ROOT, startNats, type RunningServer } from "../../../src/dev/servers.ts";
import { NatsAuthorizationError } from "../../../src/errors.ts";
import { placementOf } from "../../../src/placement/kv.ts";
import { TestCluster } from "../../support/cluster.ts";
import { testEnv } from "../../support/env.ts";

const PASSWORDS = {
  GATEWAY_NATS_PASSWORD: "gateway-pw-0123456789",
  WORKER_NATS_PASSWORD: "worker-pw-0123456789",
  OPERATOR_NATS_PASSWORD: "operator-pw-0123456789",
};
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
const as = (user: "gateway" | "worker" | "operator"): NatsSecurity => ({
  ...NONE,
  user,
  password: PASSWORDS[`${user.toUpperCase()}_NATS_PASSWORD` as keyof typeof PASSWORDS],
});

describe("security: deploy/nats.conf roles", function () {
  this.timeout(60000);
  let nats: RunningServer;
  let dir: string;
  let cluster: TestCluster;

  before(async () => {
    dir = join(testEnv.dataDir, `nats-roles-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    // nats-server reads the passwords from its environment, as in docker-compose.yml; restored below.
    const saved = Object.fromEntries(Object.keys(PASSWORDS).map((k) => [k, process.env[k]]));
    Object.assign(process.env, PASSWORDS);
    try {
      nats = await startNats(dir, 0, { configFile: join(ROOT, "deploy/nats.conf") });
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
  after(async () => {
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    // The file allows the subjects of the `switchboard` namespace only (this server is the test's own).
    cluster = new TestCluster({ namespace: "switchboard" }, "roles");
  });
  afterEach(async () => {
    await cluster.stop();
  });

  it("lets gateway, worker and operator join and open the placement KV", async () => {
    const gateway = cluster.node("gateway", [], { natsUrl: nats.url, nats: as("gateway") });
    const worker = cluster.node("worker", [], { natsUrl: nats.url, nats: as("worker") });
    const operator = cluster.node("operator", [], { natsUrl: nats.url, nats: as("operator") });
    await cluster.start();
    for (const b of [gateway, worker, operator]) assert.ok(placementOf(b), `${b.nodeID} opened the KV`);
    const nodes = (await operator.call("$node.list", {}, { nodeID: "gateway" })) as { id: string }[];
    assert.deepEqual(nodes.map((n) => n.id).sort(), ["gateway", "operator", "worker"]);
  });

  it("lets only a worker write the placement table", async () => {
    const key = `roles-test-${process.pid}`;
    const writeAs = async (user: "gateway" | "worker" | "operator") => {
      const s = as(user);
      const nc = await connect({ servers: nats.url, user: s.user, pass: s.password });
      try {
        const kv = await nc.jetstream().views.kv("placement", { history: 1 });
        await kv.put(key, new TextEncoder().encode(user));
        await kv.delete(key);
      } finally {
        await nc.close();
      }
    };
    await writeAs("worker");
    await assert.rejects(writeAs("gateway"), /permission/i);
    await assert.rejects(writeAs("operator"), /permission/i);
  });

  it("refuses a user who is not in the file, and a wrong password, at start", async () => {
    for (const nats_ of [
      { ...NONE, user: "intruder", password: "x" },
      { ...as("worker"), password: "wrong" },
    ]) {
      const broker = new ServiceBroker(
        brokerOptions(cluster.config("intruder", { natsUrl: nats.url, nats: nats_ })),
      );
      try {
        await assert.rejects(broker.start(), (err: Error) => err instanceof NatsAuthorizationError);
      } finally {
        await broker.stop().catch(() => undefined);
      }
    }
  });
});
