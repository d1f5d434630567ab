// A start whose auth state cannot be restored because MongoDB does not answer: a failure time fixes, so
// its reason is one the owner retries, in webjs and in the simulated engine alike. The database is a
// real driver against a port nothing listens on; a webjs start fails before Chromium would be launched.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MongoClient } from "mongodb";
import { processesMentioning } from "../../../src/engines/webjs/chromium.ts";
import { SimulatedEngine } from "../../../src/engines/simulated.ts";
import { WebjsEngine } from "../../../src/engines/webjs/index.ts";
import type { EngineEvents } from "../../../src/engines/base.ts";
import { RETRYABLE } from "../../../src/lifecycle/states.ts";
import { GridFsAuthStore, type AuthStore } from "../../../src/store/auth-store.ts";
import { retryTransient } from "../../../src/store/mongo.ts";

/** A local port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("engines: a database outage while the auth state is restored", () => {
  let root: string;
  let client: MongoClient;
  let gridFs: GridFsAuthStore;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), "switchboard-webjs-outage-"));
    client = new MongoClient(`mongodb://127.0.0.1:${await closedPort()}/outage`, {
      serverSelectionTimeoutMS: 200,
    });
    gridFs = new GridFsAuthStore(client.db());
  });

  after(async () => {
    await client.close();
    rmSync(root, { recursive: true, force: true });
  });

  async function startWith(authStore: AuthStore) {
    const engine = new WebjsEngine({
      accountId: "a-outage",
      workspaceId: "ws-outage",
      sessionId: `s-outage-${Math.random().toString(36).slice(2, 8)}`,
      authStore,
      qr: { firstTtlMs: 60000, refreshMs: 20000, max: 6 },
      chromiumPath: "/usr/bin/chromium",
      profileDir: root,
      startupTimeoutMs: 10000,
    });
    let failed: EngineEvents["failed"] | undefined;
    engine.on("failed", (...args) => (failed = args));
    await engine.start(); // resolves once the launch has ended
    await engine.stop();
    assert.deepEqual(processesMentioning(engine.userDataDir), [], "no Chromium was left running");
    return failed;
  }

  it("as the session runtime loads it (DatabaseUnavailableError): failed with a retryable reason", async () => {
    const failed = await startWith({
      load: (id) => retryTransient(() => gridFs.load(id)),
      save: (id, blob) => retryTransient(() => gridFs.save(id, blob)),
      delete: (id) => retryTransient(() => gridFs.delete(id)),
      has: (id) => gridFs.has(id),
    });
    assert.ok(failed, "the start ended failed");
    assert.equal(failed[0], "browser_launch_failed");
    assert.ok(RETRYABLE.has(failed[0]), "the owner starts it again after a backoff");
    assert.match(failed[1], /^Restoring the auth state failed: The database is unavailable/);
    assert.doesNotMatch(failed[1], /127\.0\.0\.1/, "the database's address stays in the node's log");
  });

  it("straight from the driver (MongoServerSelectionError): the same", async () => {
    const failed = await startWith(gridFs);
    assert.ok(failed);
    assert.equal(failed[0], "browser_launch_failed");
    assert.match(failed[1], /^Restoring the auth state failed: The database is unavailable/);
  });

  it("the simulated engine, as webjs: failed with the same retryable reason", async () => {
    const engine = new SimulatedEngine({
      accountId: "a-outage-sim",
      workspaceId: "ws-outage",
      sessionId: "s-outage-sim",
      authStore: gridFs,
      qr: { firstTtlMs: 60000, refreshMs: 20000, max: 6 },
    });
    let failed: EngineEvents["failed"] | undefined;
    engine.on("failed", (...args) => (failed = args));
    await engine.start();
    await engine.stop();
    assert.ok(failed, "the start ended failed");
    assert.equal(failed[0], "browser_launch_failed");
    assert.ok(RETRYABLE.has(failed[0]));
    assert.match(failed[1], /^Restoring the auth state failed: The database is unavailable/);
  });
});
