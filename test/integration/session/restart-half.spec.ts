// A restart of an account whose session ended with a verdict that needs a person (its QR expired)
// fails after it set the account wanted running (its start met the database away): the owner's
// reconciler starts it, rather than leave it wanted running and stopped until the next failover.
import { strict as assert } from "node:assert";
import type { ServiceBroker } from "moleculer";
import AccountsService from "../../../services/accounts.service.ts";
import SessionService from "../../../services/session.service.ts";
import type { AccountView } from "../../../src/accounts/types.ts";
import { DatabaseUnavailableError } from "../../../src/errors.ts";
import type { OwnedAccounts } from "../../../src/session/owned-accounts.ts";
import { TestCluster } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";

describe("session: a restart that fails halfway", function () {
  this.timeout(30000);
  let cluster: TestCluster;
  let node: ServiceBroker;

  before(async () => {
    cluster = new TestCluster({ qr: { firstTtlMs: 300, refreshMs: 300, max: 1 } }, "restarthalf");
    node = cluster.node("n1", [AccountsService, SessionService]);
    await cluster.start();
  });
  after(async () => cluster?.stop());

  it("leaves the account wanted running: its owner starts it", async () => {
    const account: AccountView = await node.call("accounts.create", { workspaceId: "wrh" });
    const ids = { workspaceId: "wrh", accountId: account.id };
    const get = () => node.call<AccountView, object>("accounts.get", ids);
    await waitFor(async () => (await get()).status === "failed", { what: "the QR to expire" });
    const owned = (node.getLocalService("session") as unknown as { owned: OwnedAccounts }).owned;
    const real = owned.start.bind(owned);
    owned.start = async () => {
      owned.start = real;
      throw new DatabaseUnavailableError("connect ECONNREFUSED");
    };
    await assert.rejects(node.call("accounts.restart", ids), { code: 503 });
    assert.equal((await get()).status, "failed", "the start never ran");
    await waitFor(async () => ["initializing", "qr_scanning"].includes((await get()).status), {
      what: "the reconciler to start it",
      timeoutMs: 15000,
    });
  });
});
