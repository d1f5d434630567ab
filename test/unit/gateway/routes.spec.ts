// The route table is the single source of the aliases and of the OpenAPI document.
import { strict as assert } from "node:assert";
import { buildOpenApi } from "../../../src/gateway/openapi.ts";
import { renderDocsHtml } from "../../../src/gateway/docs-page.ts";
import { ROUTES, fullPath, validatorSchema } from "../../../src/gateway/routes.ts";

describe("gateway route table and OpenAPI", () => {
  it("declares every route of DESIGN.md's contract once", () => {
    const keys = ROUTES.map((r) => `${r.method} ${fullPath(r)}`);
    assert.equal(new Set(keys).size, keys.length, "no duplicates");
    for (const k of [
      "POST /api/v1/workspaces/:workspaceId/keys",
      "POST /api/v1/accounts",
      "GET /api/v1/accounts",
      "GET /api/v1/accounts/:accountId",
      "GET /api/v1/accounts/:accountId/qr",
      "POST /api/v1/accounts/:accountId/pairing-code",
      "POST /api/v1/accounts/:accountId/restart",
      "POST /api/v1/accounts/:accountId/logout",
      "DELETE /api/v1/accounts/:accountId",
      "POST /api/v1/accounts/:accountId/messages",
      "POST /api/v1/accounts/:accountId/simulate/scan",
      "POST /api/v1/accounts/:accountId/simulate/disconnect",
      "POST /api/v1/accounts/:accountId/simulate/logout",
      "POST /api/v1/accounts/:accountId/simulate/message",
      "GET /api/v1/cluster/nodes",
      "GET /api/v1/cluster/placement/:workspaceId",
      "POST /api/v1/cluster/nodes/:nodeId/drain",
      "POST /api/v1/cluster/rebalance",
      "GET /health/live",
      "GET /health/ready",
      "GET /metrics",
      "GET /api/openapi.json",
    ]) {
      assert.ok(keys.includes(k), `${k} declared`);
    }
  });

  it("account routes call accounts.* only, never session.*", () => {
    for (const r of ROUTES.filter((r) => r.path.startsWith("/accounts"))) {
      assert.match(r.action!, /^accounts\./, `${r.id} → ${r.action}`);
    }
  });

  it("workspace routes validate a workspaceId the caller never declares as a param", () => {
    const list = ROUTES.find((r) => r.id === "listAccounts")!;
    assert.ok(!("workspaceId" in list.params));
    assert.ok("workspaceId" in validatorSchema(list));
  });

  it("generates an OpenAPI 3.1 operation per route with its params, and a docs page", () => {
    const doc = buildOpenApi() as any;
    assert.equal(doc.openapi, "3.1.0");
    for (const r of ROUTES) {
      const op = doc.paths[fullPath(r).replace(/:([A-Za-z0-9_]+)/g, "{$1}")]?.[r.method.toLowerCase()];
      assert.ok(op, `${r.id} documented`);
      assert.equal(op.operationId, r.id);
      for (const [name, rule] of Object.entries(r.params)) {
        if (rule.in === "body") assert.ok(op.requestBody.content["application/json"].schema.properties[name]);
        else
          assert.ok(
            op.parameters.some((p: any) => p.name === (rule.header ?? name) && p.in === rule.in),
            `${r.id} ${name}`,
          );
      }
    }
    const qr = doc.paths["/api/v1/accounts/{accountId}/qr"].get;
    assert.ok(qr.responses["200"].content["image/png"]);
    assert.ok(qr.responses["409"]);
    // The lifecycle calls answer 409 (being deleted, stopped meanwhile) and 503 (no worker, database away).
    for (const [path, method] of [
      ["/api/v1/accounts", "post"],
      ["/api/v1/accounts/{accountId}/restart", "post"],
      ["/api/v1/accounts/{accountId}/logout", "post"],
      ["/api/v1/accounts/{accountId}", "delete"],
    ])
      for (const status of ["409", "503"])
        assert.ok(doc.paths[path][method].responses[status], `${method} ${path} ${status}`);
    // A send without a key past its deadline (README: not sent, safe to send again).
    const send = doc.paths["/api/v1/accounts/{accountId}/messages"].post;
    assert.match(send.responses["504"]?.description ?? "", /SEND_DEADLINE_EXCEEDED/);
    // A body route says what a body that is no JSON gets; /metrics, what a missing METRICS_TOKEN gets.
    assert.ok(doc.paths["/api/v1/accounts"].post.responses["415"]);
    assert.ok(doc.paths["/metrics"].get.responses["401"]);
    const limit = doc.paths["/api/v1/events"].get.parameters.find((p: any) => p.name === "limit");
    assert.ok(
      new RegExp(limit.schema.pattern).test("1000") && !new RegExp(limit.schema.pattern).test("1001"),
    );
    const html = renderDocsHtml(doc);
    assert.ok(html.includes("/api/v1/accounts/{accountId}/qr"));
    assert.ok(!/<script/i.test(html));
  });
});
