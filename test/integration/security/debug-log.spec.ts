// The gateway's log at LOG_LEVEL=debug names each request and the action it calls, never the request's
// params: they carry message texts, media, webhook secrets and contacts' numbers.
import { strict as assert } from "node:assert";
import { GatewayCluster } from "../api/helpers.ts";

describe("security: the gateway's debug log", function () {
  this.timeout(30000);
  let gc: GatewayCluster;
  before(async () => {
    // Debug for the api service only: the rest of the cluster would flood the test output.
    const logLevel = { API: "debug", "**": process.env.TEST_LOG_LEVEL ?? "warn" } as unknown as string;
    gc = new GatewayCluster({ logLevel });
    await gc.addGateway("gw");
    await gc.start();
  });
  after(async () => gc?.stop());

  it("logs the request and its action, not the body's values", async () => {
    const { key } = await gc.createKey("ws_debug_log");
    const marker = `secret-${Date.now()}-marker`;
    const lines: string[] = [];
    const original = console.log;
    console.log = (...args: unknown[]) => void lines.push(args.map((a) => JSON.stringify(a)).join(" "));
    try {
      const res = await gc.gw.call("POST", "/api/v1/accounts", { key, body: { name: marker } });
      assert.equal(res.status, 201, JSON.stringify(res.json));
    } finally {
      console.log = original;
    }
    const log = lines.join("\n");
    assert.match(log, /Call 'accounts\.create' action/, "the debug log was captured");
    assert.ok(!log.includes(marker), `a body value in the log:\n${log}`);
  });
});
