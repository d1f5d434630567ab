// Settings production must not run without, and values refused at load because they would break the
// node later (fencing, flapping, no load bound, instant timeouts).
import { strict as assert } from "node:assert";
import { ENGINES, loadConfig, nodeProfileDir } from "../../src/config.ts";
import { engineNames } from "../../src/engines/index.ts";

describe("config", () => {
  const saved = { ...process.env };
  const restore = () => {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  };
  afterEach(restore);

  /** loadConfig() with `env` set on top of the environment the suite started with. */
  const load = (env: Record<string, string>) => {
    restore();
    Object.assign(process.env, env);
    return loadConfig();
  };

  it("refuses NODE_ENV=production without SECRETS_KEY, naming the setting; elsewhere it may be empty", () => {
    process.env.NODE_ENV = "production";
    delete process.env.SECRETS_KEY;
    assert.throws(() => loadConfig(), /SECRETS_KEY is required when NODE_ENV=production/);
    process.env.SECRETS_KEY = "k".repeat(10);
    assert.equal(loadConfig().secretsKey, "k".repeat(10));
    delete process.env.NODE_ENV;
    delete process.env.SECRETS_KEY;
    assert.equal(loadConfig().secretsKey, "");
  });

  it("CHROMIUM_SINGLE_PROCESS: unset or auto → auto; 1/true and 0/false force it; anything else is refused", () => {
    const model = (v: string | undefined) => {
      if (v === undefined) delete process.env.CHROMIUM_SINGLE_PROCESS;
      else process.env.CHROMIUM_SINGLE_PROCESS = v;
      return loadConfig().chromiumSingleProcess;
    };
    assert.equal(model(undefined), "auto");
    assert.equal(model("AUTO"), "auto");
    assert.equal(model("1"), true);
    assert.equal(model("false"), false);
    assert.throws(() => model("yes"), /CHROMIUM_SINGLE_PROCESS must be 1\/true, 0\/false or auto, got "yes"/);
  });

  it("refuses a webhook timeout of half the endpoint lease or more (no attempt could start), naming both", () => {
    process.env.WEBHOOK_LEASE_TTL_MS = "30000";
    process.env.WEBHOOK_TIMEOUT_MS = "15000";
    assert.throws(
      () => loadConfig(),
      /WEBHOOK_TIMEOUT_MS \(15000\) must be under half of WEBHOOK_LEASE_TTL_MS \(30000\)/,
    );
    process.env.WEBHOOK_TIMEOUT_MS = "14999";
    assert.equal(loadConfig().webhookTimeoutMs, 14999);
    delete process.env.WEBHOOK_TIMEOUT_MS;
    delete process.env.WEBHOOK_LEASE_TTL_MS;
    assert.deepEqual([loadConfig().webhookTimeoutMs, loadConfig().webhookLeaseTtlMs], [10000, 30000]);
  });

  it("loads the defaults and documented example values", () => {
    const cfg = loadConfig();
    assert.deepEqual(
      [cfg.leaseRenewMs, cfg.leaseTtlMs, cfg.loadFactor, cfg.port, cfg.healthPort],
      [500, 3500, 1.25, 3000, 0],
    );
    assert.deepEqual([cfg.heartbeatIntervalMs, cfg.heartbeatTimeoutMs], [2000, 6000]);
    assert.deepEqual(cfg.qr, { firstTtlMs: 60000, refreshMs: 20000, max: 6 });
    // README (PORT=0 picks a free port), docker-compose (HEALTH_PORT=3001), the test clusters' timings.
    assert.equal(load({ PORT: "0" }).port, 0);
    assert.equal(load({ HEALTH_PORT: "3001" }).healthPort, 3001);
    const fast = load({
      HEARTBEAT_INTERVAL_MS: "1000",
      HEARTBEAT_TIMEOUT_MS: "3000",
      LEASE_RENEW_MS: "500",
      LEASE_TTL_MS: "2000",
      LOAD_FACTOR: "1",
      QR_FIRST_TTL_MS: "300",
      QR_REFRESH_MS: "100",
    });
    assert.deepEqual([fast.leaseTtlMs, fast.heartbeatTimeoutMs, fast.loadFactor], [2000, 3000, 1]);
    assert.equal(load({ LEASE_RENEW_MS: "1000", LEASE_TTL_MS: "5000" }).leaseTtlMs, 5000);
    assert.equal(load({ LEASE_RENEW_MS: "100", LEASE_TTL_MS: "1000" }).leaseTtlMs, 1000);
  });

  it("refuses a lease TTL that does not exceed the renewal period plus the fence margin, naming both", () => {
    assert.throws(
      () => load({ LEASE_RENEW_MS: "5000" }),
      /LEASE_TTL_MS \(3500\) must exceed LEASE_RENEW_MS \(5000\) plus the fence margin \(250 ms\)/,
    );
    assert.throws(
      () => load({ LEASE_RENEW_MS: "3250" }),
      /LEASE_TTL_MS \(3500\) must exceed LEASE_RENEW_MS \(3250\) plus the fence margin \(250 ms\)/,
    );
    assert.equal(load({ LEASE_RENEW_MS: "3249" }).leaseRenewMs, 3249);
    // A short TTL's margin is a quarter of it, as Liveness sets it.
    assert.throws(
      () => load({ LEASE_RENEW_MS: "300", LEASE_TTL_MS: "400" }),
      /LEASE_TTL_MS \(400\) must exceed LEASE_RENEW_MS \(300\) plus the fence margin \(100 ms\)/,
    );
    assert.equal(load({ LEASE_RENEW_MS: "299", LEASE_TTL_MS: "400" }).leaseTtlMs, 400);
  });

  it("refuses a zero or negative lease TTL or renewal period, naming the variable and value", () => {
    assert.throws(() => load({ LEASE_TTL_MS: "0" }), /LEASE_TTL_MS must be at least 1 \(ms\), got "0"/);
    assert.throws(() => load({ LEASE_TTL_MS: "-1" }), /LEASE_TTL_MS must be a non-negative number, got "-1"/);
    assert.throws(() => load({ LEASE_RENEW_MS: "0" }), /LEASE_RENEW_MS must be at least 1 \(ms\), got "0"/);
  });

  it("refuses a number setting that is not a whole number, naming it; blank is the default", () => {
    for (const bad of ["0.5", "1e3", "5s", "-"])
      assert.throws(
        () => load({ QUOTA_ACCOUNTS: bad }),
        new RegExp(`QUOTA_ACCOUNTS must be a non-negative number, got "${bad}" \\(a whole one`),
        bad,
      );
    assert.equal(load({ QUOTA_ACCOUNTS: " " }).quotas.accounts, 100);
    assert.equal(load({ QUOTA_ACCOUNTS: " 7 " }).quotas.accounts, 7);
  });

  it("LOG_LEVEL and ENGINE: one of the documented values (any case), else refused naming them", () => {
    assert.equal(load({ LOG_LEVEL: "WARN" }).logLevel, "warn");
    assert.throws(() => load({ LOG_LEVEL: "warning" }), /LOG_LEVEL must be one of .*warn.*, got "warning"/);
    assert.equal(load({ ENGINE: "Simulated" }).engine, "simulated");
    assert.throws(
      () => load({ ENGINE: "simualted" }),
      /ENGINE must be one of webjs, simulated, got "simualted"/,
    );
    // Specs register engines of their own: each one config takes must be registered.
    for (const engine of ENGINES) assert.ok(engineNames().includes(engine), `${engine} is registered`);
  });

  it("refuses a zero retry backoff (every attempt at once) and a maximum under its base, naming them", () => {
    for (const prefix of ["WEBHOOK_BACKOFF", "FAILED_RETRY"]) {
      for (const part of ["BASE", "MAX"])
        assert.throws(
          () => load({ [`${prefix}_${part}_MS`]: "0" }),
          new RegExp(`${prefix}_${part}_MS must be at least 1 \\(ms\\)`),
        );
      assert.throws(
        () => load({ [`${prefix}_BASE_MS`]: "5000", [`${prefix}_MAX_MS`]: "4000" }),
        new RegExp(`${prefix}_MAX_MS \\(4000\\) must be at least ${prefix}_BASE_MS \\(5000\\)`),
      );
    }
    const cfg = load({ WEBHOOK_BACKOFF_BASE_MS: "200", WEBHOOK_BACKOFF_MAX_MS: "200" });
    assert.equal(cfg.webhookBackoffBaseMs, 200);
    assert.equal(cfg.webhookBackoffMaxMs, 200);
  });

  it("LOAD_FACTOR: refuses anything but a finite number of at least 1", () => {
    for (const bad of ["1,25", "abc", "0", "-1", "0.99", "Infinity", "NaN"])
      assert.throws(
        () => load({ LOAD_FACTOR: bad }),
        new RegExp(`LOAD_FACTOR must be a number of at least 1 \\(with a decimal point\\), got "${bad}"`),
        bad,
      );
    assert.equal(load({ LOAD_FACTOR: "1" }).loadFactor, 1);
    assert.equal(load({ LOAD_FACTOR: "2.5" }).loadFactor, 2.5);
  });

  it("refuses a port above 65535 for every port setting; 0 keeps its meaning", () => {
    for (const name of ["PORT", "HEALTH_PORT"]) {
      assert.throws(
        () => load({ [name]: "70000" }),
        new RegExp(`^Error: ${name} must be a port from 0 to 65535, got "70000"`),
      );
      assert.throws(() => load({ [name]: "65536" }), new RegExp(`${name} must be a port from 0 to 65535`));
      assert.throws(
        () => load({ [name]: "-1" }),
        new RegExp(`${name} must be a non-negative number, got "-1"`),
      );
      assert.equal(load({ [name]: "65535" })[name === "PORT" ? "port" : "healthPort"], 65535);
      assert.equal(load({ [name]: "0" })[name === "PORT" ? "port" : "healthPort"], 0);
    }
  });

  it("refuses a heartbeat timeout not above the interval, also in Moleculer's whole seconds, naming both", () => {
    assert.throws(
      () => load({ HEARTBEAT_TIMEOUT_MS: "2000" }),
      /HEARTBEAT_TIMEOUT_MS \(2000\) must exceed HEARTBEAT_INTERVAL_MS \(2000\)/,
    );
    assert.throws(
      () => load({ HEARTBEAT_TIMEOUT_MS: "1500" }),
      /HEARTBEAT_TIMEOUT_MS \(1500\) must exceed HEARTBEAT_INTERVAL_MS \(2000\)/,
    );
    // 1.6 s and 2.4 s are both 2 s to Moleculer.
    assert.throws(
      () => load({ HEARTBEAT_INTERVAL_MS: "1600", HEARTBEAT_TIMEOUT_MS: "2400" }),
      /HEARTBEAT_TIMEOUT_MS \(2400\) must exceed HEARTBEAT_INTERVAL_MS \(1600\), also in the whole seconds Moleculer uses \(2 s, 2 s\)/,
    );
    assert.equal(load({ HEARTBEAT_TIMEOUT_MS: "3000" }).heartbeatTimeoutMs, 3000);
  });

  it("refuses zero QR timings and startup timeout (every start would time out at once)", () => {
    for (const name of ["QR_FIRST_TTL_MS", "QR_REFRESH_MS", "STARTUP_TIMEOUT_MS"]) {
      assert.throws(() => load({ [name]: "0" }), new RegExp(`${name} must be at least 1 \\(ms\\), got "0"`));
      assert.throws(
        () => load({ [name]: "0.5" }),
        new RegExp(`${name} must be a non-negative number, got "0.5" \\(a whole one`),
      );
      assert.throws(
        () => load({ [name]: "-5" }),
        new RegExp(`${name} must be a non-negative number, got "-5"`),
      );
    }
    const cfg = load({ QR_FIRST_TTL_MS: "1", QR_REFRESH_MS: "1", STARTUP_TIMEOUT_MS: "1" });
    assert.deepEqual([cfg.qr.firstTtlMs, cfg.qr.refreshMs, cfg.startupTimeoutMs], [1, 1, 1]);
  });

  it("each node keeps its browser profiles in a directory of its own under PROFILE_DIR", () => {
    assert.equal(
      nodeProfileDir("/tmp/switchboard-profiles", "worker-1"),
      "/tmp/switchboard-profiles/worker-1",
    );
    assert.equal(nodeProfileDir("/data/profiles/", "host.a-1234"), "/data/profiles/host.a-1234");
    // Never a path out of the root, never one node's directory a prefix of another's session paths.
    assert.equal(nodeProfileDir("/p", "../etc"), "/p/.._etc");
    assert.equal(nodeProfileDir("/p", ".."), "/p/_");
    assert.equal(nodeProfileDir("/p", "a/b c"), "/p/a_b_c");
    assert.notEqual(nodeProfileDir("/p", "w1"), nodeProfileDir("/p", "w2"));
  });
});
