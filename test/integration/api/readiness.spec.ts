// /health/ready counts a worker only while it holds a current lease: a node that runs a `session`
// service without one (a worker that fenced itself with JetStream away, still on the bus) serves no
// account, and a gateway whose only "workers" are such nodes is not ready.
import { strict as assert } from "node:assert";
import AccountsService from "../../../services/accounts.service.ts";
import { createApiService } from "../../../services/api.service.ts";
import SessionService from "../../../services/session.service.ts";
import { TestCluster, type ConfigOverrides } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";
import { gatewayPort } from "../io/support.ts";

describe("api: readiness counts leased workers only", function () {
  this.timeout(60000);
  let cluster: TestCluster | undefined;
  afterEach(async () => cluster?.stop());

  it("a node with a `session` service but no lease leaves the gateway 503; a real worker makes it ready", async () => {
    cluster = new TestCluster({}, "ready");
    const overrides: ConfigOverrides = { services: ["api", "accounts"], port: 0 };
    const gw = cluster.node(
      "gw",
      [createApiService(cluster.config("gw", overrides)), AccountsService],
      overrides,
    );
    // Answers as `session` on the bus, holds no lease: placement sends it nothing.
    cluster.node("leaseless", [{ name: "session", actions: { ping: () => ({}) } }], { services: [] });
    await cluster.start();
    const url = `http://127.0.0.1:${gatewayPort(gw)}/health/ready`;
    const res = await fetch(url);
    const body = (await res.json()) as {
      ready: boolean;
      checks: { workers: { ok: boolean; error?: string } };
    };
    assert.equal(res.status, 503, JSON.stringify(body));
    assert.equal(body.checks.workers.ok, false);
    assert.match(body.checks.workers.error ?? "", /no worker holds a current lease \(leaseless run/);

    const w1 = cluster.node("w1", [SessionService], { services: ["session"] });
    await w1.start();
    const ready = await waitFor(
      async () => {
        const r = await fetch(url);
        return r.status === 200 ? ((await r.json()) as { checks: { workers: { nodes: string[] } } }) : null;
      },
      { what: "the gateway to be ready with a leased worker" },
    );
    assert.deepEqual(ready.checks.workers.nodes, ["w1"]);
  });
});
