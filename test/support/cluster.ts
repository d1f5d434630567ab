// Builds brokers joined to the run's real NATS, so a three-node cluster is a few lines:
//   const cluster = new TestCluster();
//   await cluster.node("w1", [SessionService]); await cluster.node("gw", [AccountsService]);
//   await cluster.start(); ... await cluster.stop();
// Every cluster has a namespace of its own (and so its own KV buckets and its own database).
import { randomBytes } from "node:crypto";
import { ServiceBroker, type ServiceSchema } from "moleculer";
import { brokerOptions } from "../../moleculer.config.ts";
import { loadConfig, type Config } from "../../src/config.ts";
import { mongoUrlFor, testEnv } from "./env.ts";
import { waitFor } from "./wait.ts";

export type ConfigOverrides = Partial<Omit<Config, "qr">> & { qr?: Partial<Config["qr"]> };

/** Fast timings for tests; a test overrides what it measures. */
export const TEST_TIMINGS: ConfigOverrides = {
  heartbeatIntervalMs: 1000,
  heartbeatTimeoutMs: 3000,
  requestTimeoutMs: 10000,
  leaseRenewMs: 500,
  leaseTtlMs: 2000,
  reconcileMs: 500,
  qr: { firstTtlMs: 300, refreshMs: 100, max: 6 },
  startupTimeoutMs: 15000,
  // Specs send bursts from one account; the pacing spec sets its own gap.
  sendMinGapMs: 0,
  // A spec that waits for the scan (a crashed node's endpoints) waits 2 s at most.
  webhookScanMs: 2000,
};

export function testConfig(overrides: ConfigOverrides = {}): Config {
  const base = loadConfig();
  return {
    ...base,
    natsUrl: testEnv.natsUrl,
    mongoUrl: testEnv.mongoUrl,
    logLevel: process.env.TEST_LOG_LEVEL ?? "warn",
    engine: "simulated",
    ...TEST_TIMINGS,
    ...overrides,
    qr: { ...base.qr, ...TEST_TIMINGS.qr, ...overrides.qr },
  } as Config;
}

export class TestCluster {
  readonly namespace: string;
  readonly mongoUrl: string;
  readonly brokers: ServiceBroker[] = [];

  constructor(
    readonly shared: ConfigOverrides = {},
    name = "t",
  ) {
    this.namespace = `${name}${randomBytes(4).toString("hex")}`;
    this.mongoUrl = mongoUrlFor(this.namespace);
  }

  config(nodeId: string, overrides: ConfigOverrides = {}): Config {
    return testConfig({
      namespace: this.namespace,
      mongoUrl: this.mongoUrl,
      nodeId,
      ...this.shared,
      ...overrides,
      qr: { ...this.shared.qr, ...overrides.qr },
    });
  }

  /** Creates (does not start) a broker with a fixed nodeID running `services`. */
  node(nodeId: string, services: ServiceSchema<any>[], overrides: ConfigOverrides = {}): ServiceBroker {
    const broker = new ServiceBroker(brokerOptions(this.config(nodeId, overrides)));
    for (const schema of services) broker.createService(schema);
    this.brokers.push(broker);
    return broker;
  }

  async start(): Promise<void> {
    await Promise.all(this.brokers.filter((b) => !b.started).map((b) => b.start()));
    // Every broker must see every other broker's services before the test calls across them (a node
    // is known from its first INFO, which may come before its services started).
    const expected = this.brokers.length;
    const servicesOf = (b: ServiceBroker) =>
      b.services.map((svc) => svc.name).filter((n) => !n.startsWith("$"));
    const seesAll = (b: ServiceBroker) =>
      this.brokers.every((o) => {
        if (o === b) return true;
        const seen = b.registry.services
          .list({ onlyAvailable: true, skipInternal: true })
          .filter((svc) => svc.nodeID === o.nodeID)
          .map((svc) => svc.name);
        return servicesOf(o).every((name) => seen.includes(name));
      });
    await waitFor(
      () =>
        this.brokers.every(
          (b) =>
            b.registry.nodes.list({ onlyAvailable: true, withServices: false }).length >= expected &&
            seesAll(b),
        ),
      { what: `${expected} brokers to discover each other and their services`, timeoutMs: 15000 },
    );
  }

  async stop(): Promise<void> {
    await Promise.all(this.brokers.map((b) => (b.started ? b.stop().catch(() => undefined) : undefined)));
    this.brokers.length = 0;
  }
}
