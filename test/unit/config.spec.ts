// Settings production must not run without.
import { strict as assert } from "node:assert";
import { loadConfig } from "../../src/config.ts";

describe("config", () => {
  const saved = {
    NODE_ENV: process.env.NODE_ENV,
    SECRETS_KEY: process.env.SECRETS_KEY,
    CHROMIUM_SINGLE_PROCESS: process.env.CHROMIUM_SINGLE_PROCESS,
    WEBHOOK_TIMEOUT_MS: process.env.WEBHOOK_TIMEOUT_MS,
    WEBHOOK_LEASE_TTL_MS: process.env.WEBHOOK_LEASE_TTL_MS,
  };
  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

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
});
