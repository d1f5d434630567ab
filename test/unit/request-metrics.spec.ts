// src/request-metrics.ts: a node keeps Moleculer's middlewares in Moleculer's order, with its request
// metrics trimmed to two counters unless MOLECULER_METRICS=full. Brokers without a transporter.
import { strict as assert } from "node:assert";
import { Errors, ServiceBroker, type BrokerOptions } from "moleculer";
import { brokerOptions } from "../../moleculer.config.ts";
import { loadConfig } from "../../src/config.ts";
import { MOLECULER_INTERNAL_MIDDLEWARES } from "../../src/request-metrics.ts";

function broker(env: Record<string, string>, overrides: Partial<BrokerOptions> = {}): ServiceBroker {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return new ServiceBroker({
      ...brokerOptions(loadConfig(), { transporter: null, logger: false }),
      ...overrides,
    });
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

const namesOf = (b: ServiceBroker) =>
  (b.middlewares as unknown as { list: { name?: string }[] }).list.map((m) => m.name ?? "?");

describe("request metrics (src/request-metrics.ts)", () => {
  const brokers: ServiceBroker[] = [];
  afterEach(async () => {
    await Promise.all(brokers.splice(0).map((b) => b.stop()));
  });

  it("lists Moleculer's internal middlewares as Moleculer itself would, after the node's own", () => {
    const plain = new ServiceBroker({ logger: false, metrics: { enabled: true, reporter: [] } });
    const own = namesOf(broker({}, { internalMiddlewares: false, middlewares: [] }));
    assert.deepEqual(own, []);
    const moleculers = namesOf(plain);
    // Last of all, so that it sees a call's failure as the caller does (src/timed-out-calls.ts).
    const beforeLast = (names: string[]) => {
      assert.equal(names.at(-1), "UntrackFailedRemoteCalls");
      return names.slice(0, -1);
    };
    // Moleculer leaves out the ones it has nothing for (no cacher): ours are those it added, in order.
    const ours = beforeLast(namesOf(broker({ MOLECULER_METRICS: "full" }))).slice(-moleculers.length);
    assert.deepEqual(ours, moleculers);
    assert.deepEqual(
      moleculers,
      MOLECULER_INTERNAL_MIDDLEWARES.filter((n) => moleculers.includes(n)),
    );
    assert.deepEqual(
      beforeLast(namesOf(broker({}))).slice(-moleculers.length),
      moleculers.map((n) => (n === "Metrics" ? "RequestCounters" : n)),
    );
  });

  it("counts requests and failed requests where the action runs; nothing else of Moleculer's by default", async () => {
    const b = broker({});
    brokers.push(b);
    b.createService({
      name: "svc",
      actions: {
        ok: () => "fine",
        fails: () => {
          throw new Errors.MoleculerClientError("no", 422, "NOPE");
        },
      },
    });
    await b.start();
    await b.call("svc.ok");
    await b.call("svc.ok");
    await assert.rejects(b.call("svc.fails"), { type: "NOPE" });
    const metric = (name: string) =>
      (
        b.metrics.list({ includes: [name] }) as unknown as {
          values: { labels: Record<string, unknown>; value: number }[];
        }[]
      )[0];
    const total = metric("moleculer.request.total");
    const count = (action: string) =>
      total.values.filter((v) => v.labels.action === action).reduce((a, v) => a + v.value, 0);
    assert.deepEqual([count("svc.ok"), count("svc.fails")], [2, 1]);
    const errors = metric("moleculer.request.error.total").values;
    assert.deepEqual(
      errors.map((v) => [v.labels.action, v.labels.errorType, v.value]),
      [["svc.fails", "NOPE", 1]],
    );
    assert.equal(metric("moleculer.request.time"), undefined);
    assert.equal(metric("moleculer.transporter.packets.sent.total"), undefined);
  });

  it("MOLECULER_METRICS=full keeps all of Moleculer's; anything else is refused, naming the setting", async () => {
    const b = broker({ MOLECULER_METRICS: "full" });
    brokers.push(b);
    b.createService({ name: "svc", actions: { ok: () => "fine" } });
    await b.start();
    await b.call("svc.ok");
    assert.ok(b.metrics.list({ includes: ["moleculer.request.time"] }).length > 0);
    assert.throws(
      () => broker({ MOLECULER_METRICS: "some" }),
      /MOLECULER_METRICS must be one of requests, full/,
    );
  });
});
