// Every answer of the gateway carries the security headers; the API docs page, whose only inline code
// is its stylesheet, allows exactly that stylesheet by its hash.
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { CONTENT_SECURITY_POLICY, SECURITY_HEADERS } from "../../../src/gateway/security-headers.ts";
import { GatewayCluster } from "../api/helpers.ts";

describe("security: gateway headers", function () {
  this.timeout(30000);
  let gc: GatewayCluster;
  before(async () => {
    gc = new GatewayCluster();
    await gc.addGateway("gw");
    await gc.addWorker("w1");
    await gc.start();
  });
  after(async () => gc?.stop());

  it("REST (ok, refused, not found), health, metrics, OpenAPI, dashboard, Socket.IO: all carry them", async () => {
    const { key } = await gc.createKey("ws_headers");
    const answers = await Promise.all([
      gc.gw.call("GET", "/api/v1/accounts", { key }),
      gc.gw.call("GET", "/api/v1/accounts"),
      gc.gw.call("GET", "/api/v1/nowhere", { key }),
      gc.gw.call("GET", "/health/live"),
      gc.gw.call("GET", "/metrics"),
      gc.gw.call("GET", "/api/openapi.json"),
      gc.gw.call("GET", "/"),
      gc.gw.call("GET", "/app.js"),
      gc.gw.call("GET", "/socket.io/?EIO=4&transport=polling"),
    ]);
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 401, 404, 200, 200, 200, 200, 200, answers[8].status],
    );
    for (const a of answers) {
      for (const [name, value] of Object.entries(SECURITY_HEADERS))
        assert.equal(a.headers[name.toLowerCase()], value, `${name} on a ${a.status}`);
    }
    assert.match(CONTENT_SECURITY_POLICY, /default-src 'self'/);
    assert.match(CONTENT_SECURITY_POLICY, /frame-ancestors 'none'/);
  });

  it("/api/docs allows its own stylesheet by hash, and nothing else inline", async () => {
    const res = await gc.gw.call("GET", "/api/docs");
    assert.equal(res.status, 200);
    const css = /<style>([\s\S]*?)<\/style>/.exec(res.body.toString())![1];
    const hash = createHash("sha256").update(css).digest("base64");
    const csp = String(res.headers["content-security-policy"]);
    assert.ok(csp.startsWith(CONTENT_SECURITY_POLICY), csp);
    assert.ok(csp.includes(`style-src 'self' 'sha256-${hash}'`), csp);
    assert.ok(!csp.includes("unsafe-inline"));
    assert.ok(!res.body.toString().includes("<script"), "the docs page runs no script");
  });
});
