// Settings production must not run without.
import { strict as assert } from "node:assert";
import { loadConfig } from "../../src/config.ts";

describe("config", () => {
  const saved = { NODE_ENV: process.env.NODE_ENV, SECRETS_KEY: process.env.SECRETS_KEY };
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
});
