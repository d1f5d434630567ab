// A MongoDB outage: requests fail within 2 s with 503 DATABASE_UNAVAILABLE (not a 10 s hang and a 500),
// and the cluster serves again once the database is back. The spec runs its own FerretDB, so stopping
// it disturbs no other test.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMongoWire, type RunningServer } from "../../../src/dev/servers.ts";
import { GatewayCluster } from "../api/helpers.ts";
import { waitFor } from "../../support/wait.ts";

describe("database outage: requests fail fast with 503 DATABASE_UNAVAILABLE", function () {
  this.timeout(90000);
  const dir = mkdtempSync(join(tmpdir(), "sb-outage-"));
  let db: RunningServer | null;
  let port: number;
  let gc: GatewayCluster;

  before(async () => {
    db = await startMongoWire(dir);
    port = db.port;
    gc = new GatewayCluster({ mongoUrl: db.url });
    await gc.addGateway("gw");
    await gc.addWorker("w1");
    await gc.start();
  });

  /** The database is back for whatever runs next, even when a test failed with it stopped. */
  async function databaseUp(): Promise<void> {
    db ??= await startMongoWire(dir, port);
  }

  afterEach(databaseUp);

  after(async () => {
    await gc?.stop();
    await db?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("reads and writes answer 503 within 2 s while it is down, and work again once it is back", async () => {
    const { key } = await gc.createKey("ws_outage");
    assert.equal((await gc.gw.call("POST", "/api/v1/accounts", { key, body: {} })).status, 201);
    assert.equal((await gc.gw.call("GET", "/api/v1/accounts", { key })).status, 200);

    await db!.stop();
    db = null;
    for (const [method, body] of [
      ["GET", undefined],
      ["POST", {}],
    ] as const) {
      const started = Date.now();
      const res = await gc.gw.call(method, "/api/v1/accounts", { key, body });
      const took = Date.now() - started;
      assert.equal(res.status, 503, `${method}: ${res.body}`);
      assert.equal(res.json.type, "DATABASE_UNAVAILABLE");
      assert.ok(took < 2000, `${method} /api/v1/accounts answered after ${took} ms (at most 2000)`);
    }

    await databaseUp();
    await waitFor(async () => (await gc.gw.call("GET", "/api/v1/accounts", { key })).status === 200, {
      what: "the gateway to serve again once the database is back",
      timeoutMs: 20000,
      intervalMs: 250,
    });
  });
});
