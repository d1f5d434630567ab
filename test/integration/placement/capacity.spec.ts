// SESSION_CAPACITY is a hard bound: a worker runs at most that many sessions; one more fails with
// reason `capacity_exhausted` (a retryable reason), and starts once a slot is free again.
import { strict as assert } from "node:assert";
import type { ServiceBroker } from "moleculer";
import AccountsService from "../../../services/accounts.service.ts";
import SessionService from "../../../services/session.service.ts";
import type { AccountView } from "../../../src/accounts/types.ts";
import { callAccounts } from "../../../src/accounts/calls.ts";
import { TestCluster } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";

describe("placement: SESSION_CAPACITY is a hard bound", function () {
  this.timeout(60000);
  let cluster: TestCluster;
  let gw: ServiceBroker;

  before(async () => {
    cluster = new TestCluster(
      { sessionCapacity: 2, failedRetryBaseMs: 300, failedRetryMaxMs: 1000, engine: "simulated" },
      "capacity",
    );
    gw = cluster.node("gw", [AccountsService], { services: ["accounts"] });
    cluster.node("w1", [SessionService], { services: ["session"] });
    await cluster.start();
    await gw.waitForServices(["session", "accounts"], 15000);
  });

  after(async () => cluster?.stop());

  const statusOf = (accountId: string) => callAccounts(gw, "get", { workspaceId: "ws_cap", accountId });

  it("the session past the capacity fails capacity_exhausted, and runs once a slot is free", async () => {
    const accounts: AccountView[] = [];
    for (let i = 0; i < 3; i++) accounts.push(await callAccounts(gw, "create", { workspaceId: "ws_cap" }));
    const [first, , third] = accounts;
    await waitFor(async () => (await statusOf(third.id)).status === "failed", { what: "the third to fail" });
    const failed = await statusOf(third.id);
    assert.equal(failed.reason, "capacity_exhausted");
    assert.match(failed.message ?? "", /SESSION_CAPACITY/);
    for (const a of accounts.slice(0, 2)) assert.notEqual((await statusOf(a.id)).status, "failed");

    await callAccounts(gw, "remove", { workspaceId: "ws_cap", accountId: first.id });
    await waitFor(async () => (await statusOf(third.id)).status === "qr_scanning", {
      what: "the third account to start once a slot is free (retried with backoff)",
    });
  });
});
