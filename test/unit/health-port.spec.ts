import { strict as assert } from "node:assert";
import type { AddressInfo } from "node:net";
import { ServiceBroker } from "moleculer";
import { startHealthServer } from "../../src/health-port.ts";

describe("health-port", () => {
  it("answers /health/live 200 while the broker runs, 503 once stopped, 404 elsewhere", async () => {
    const broker = new ServiceBroker({ logger: false, nodeID: "health-test" });
    await broker.start();
    const server = await startHealthServer(broker, 0, "127.0.0.1");
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const live = await fetch(`${base}/health/live`);
      assert.equal(live.status, 200);
      assert.deepEqual(await live.json(), { live: true, nodeID: "health-test" });
      assert.equal((await fetch(`${base}/other`)).status, 404);
      await broker.stop();
      assert.equal((await fetch(`${base}/health/live`)).status, 503);
    } finally {
      await broker.stop();
      await new Promise((r) => server.close(r));
    }
  });

  it("answers 503 before the broker has started (it listens first); a port taken names HEALTH_PORT", async () => {
    const broker = new ServiceBroker({ logger: false, nodeID: "health-early" });
    const server = await startHealthServer(broker, 0, "127.0.0.1");
    try {
      const port = (server.address() as AddressInfo).port;
      assert.equal((await fetch(`http://127.0.0.1:${port}/health/live`)).status, 503);
      await assert.rejects(startHealthServer(broker, port, "127.0.0.1"), (err: Error) => {
        assert.match(
          err.message,
          new RegExp(`^HEALTH_PORT ${port}: cannot listen on 127\\.0\\.0\\.1:${port} \\(.*EADDRINUSE`),
        );
        return true;
      });
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
