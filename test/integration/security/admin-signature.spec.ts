// Admin actions over the bus (issue 16): a node with good NATS credentials but without the admin key
// cannot call them, whatever it puts in the call; the gateway and an operator holding the admin key
// can; a worker given only ADMIN_PUBLIC_KEY verifies them (the compose layout), and cannot make them.
import { strict as assert } from "node:assert";
import type { ServiceBroker } from "moleculer";
import { adminKeyPair, encodePublicKey, signAdminCall } from "../../../src/admin-signature.ts";
import { CLUSTER_ACTIONS } from "../../../src/placement/actions.ts";
import { waitFor } from "../../support/wait.ts";
import { GatewayCluster } from "../api/helpers.ts";

/** The error an action call ended with (it must fail). */
async function refusedWith(call: Promise<unknown>): Promise<{ code: number; type: string; message: string }> {
  const err = (await call.then(
    () => assert.fail("the admin action answered"),
    (e: unknown) => e,
  )) as { code: number; type: string; message: string };
  return err;
}

describe("security: admin actions on the bus need the admin key's signature", function () {
  this.timeout(60000);
  let gc: GatewayCluster;
  let intruder: ServiceBroker;
  let operator: ServiceBroker;
  let worker: ServiceBroker;

  before(async () => {
    gc = new GatewayCluster();
    const publicKey = encodePublicKey(adminKeyPair(gc.adminKey).publicKey);
    await gc.addGateway("gw");
    // As in docker-compose.yml: the worker verifies admin calls but holds no admin key.
    worker = await gc.addWorker("w1", { adminApiKey: "", adminPublicKey: publicKey });
    intruder = gc.cluster.node("intruder", [], { adminApiKey: "", adminPublicKey: "" });
    operator = gc.cluster.node("operator", []);
    await gc.start();
    for (const b of [intruder, operator])
      await waitFor(
        () =>
          Boolean(b.registry.getActionEndpointByNodeId(CLUSTER_ACTIONS.nodes, "w1")) &&
          Boolean(b.registry.getActionEndpointByNodeId("api.getQuotas", "gw")),
        { what: `${b.nodeID} to see the cluster and api actions` },
      );
  });
  after(async () => gc?.stop());

  it("a node without the admin key is refused 403 FORBIDDEN by every admin action, naming why", async () => {
    const calls: [string, Record<string, unknown>, string][] = [
      [CLUSTER_ACTIONS.nodes, {}, "w1"],
      [CLUSTER_ACTIONS.drain, { nodeId: "w1" }, "w1"],
      [CLUSTER_ACTIONS.rebalance, {}, "w1"],
      ["api.setQuotas", { workspaceId: "wsA", accounts: 100000 }, "gw"],
      ["api.createKey", { workspaceId: "wsA" }, "gw"],
    ];
    for (const [action, params, nodeID] of calls) {
      const err = await refusedWith(intruder.call(action, params, { nodeID }));
      assert.equal(err.code, 403, `${action}: ${err.message}`);
      assert.equal(err.type, "FORBIDDEN");
      assert.match(
        err.message,
        new RegExp(`${action.replace(".", "\\.")} is an admin action: .*no admin signature`),
      );
    }
    const quotas = (await operator.call("api.getQuotas", { workspaceId: "wsA" }, { nodeID: "gw" })) as {
      accounts: number;
    };
    assert.notEqual(quotas.accounts, 100000, "the refused setQuotas changed nothing");
  });

  it("a signature made for another caller, another node or other params is refused", async () => {
    const { privateKey } = adminKeyPair(gc.adminKey);
    const action = "api.setQuotas";
    const params = { workspaceId: "wsB", accounts: 5 };
    const forged = [
      signAdminCall(privateKey, { action, params, caller: "operator", target: "gw" }), // someone else's
      signAdminCall(privateKey, { action, params, caller: "intruder", target: "w1" }), // another node's
      signAdminCall(privateKey, {
        action,
        params: { ...params, accounts: 6 },
        caller: "intruder",
        target: "gw",
      }),
    ];
    for (const adminSignature of forged) {
      const err = await refusedWith(
        intruder.call(action, params, { nodeID: "gw", meta: { adminSignature } }),
      );
      assert.equal(err.code, 403);
      assert.match(err.message, /does not match this call/);
    }
  });

  it("a worker holding only the public key cannot make admin calls either", async () => {
    const err = await refusedWith(worker.call("api.getQuotas", { workspaceId: "wsA" }, { nodeID: "gw" }));
    assert.equal(err.code, 403);
  });

  it("the operator and the gateway, holding the admin key, are served; the worker verifies with the public key", async () => {
    const nodes = (await operator.call(CLUSTER_ACTIONS.nodes, {}, { nodeID: "w1" })) as { items: unknown[] };
    assert.ok(nodes.items.length >= 1);
    await operator.call("api.setQuotas", { workspaceId: "wsC", accounts: 7 }, { nodeID: "gw" });
    const quotas = (await operator.call("api.getQuotas", { workspaceId: "wsC" })) as { accounts: number };
    assert.equal(quotas.accounts, 7);
    // Over REST: the gateway signs its call to the worker (sent straight to the node it drains).
    const listed = await gc.gw.call("GET", "/api/v1/cluster/nodes", { key: gc.adminKey });
    assert.equal(listed.status, 200, String(listed.body));
    const drained = await gc.gw.call("POST", "/api/v1/cluster/nodes/w1/drain", { key: gc.adminKey });
    assert.equal(drained.status, 200, String(drained.body));
    assert.equal(drained.json.nodeId, "w1");
  });
});
