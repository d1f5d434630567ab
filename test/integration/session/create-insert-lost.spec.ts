// A create whose account insert lands but whose answer is lost (FerretDB answering "database is locked"
// after the write, past the retries): the account exists, so the client gets it, its `account.created`
// is logged once, and it starts — never an error that a retry turns into a second account. Real NATS
// and FerretDB; the worker's insert is made to throw after the real one.
import { strict as assert } from "node:assert";
import type { ServiceBroker } from "moleculer";
import AccountsService from "../../../services/accounts.service.ts";
import SessionService from "../../../services/session.service.ts";
import type { AccountView } from "../../../src/accounts/types.ts";
import type { AccountsRepo } from "../../../src/store/accounts-repo.ts";
import { landThenLoseAnswer } from "../../support/answer-lost.ts";
import { TestCluster } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";
import { wholeLog } from "../events/support.ts";

describe("accounts.create: the insert's answer lost", function () {
  this.timeout(30000);
  let cluster: TestCluster;
  let node: ServiceBroker;

  before(async () => {
    cluster = new TestCluster({ qr: { firstTtlMs: 60000, refreshMs: 20000 } }, "insertlost");
    node = cluster.node("n1", [AccountsService, SessionService]);
    await cluster.start();
  });
  after(async () => cluster?.stop());

  it("answers the account, announces it once and starts it", async () => {
    const repo = (node.getLocalService("session") as unknown as { repo: AccountsRepo }).repo;
    const restore = landThenLoseAnswer(repo, "insert");
    let account: AccountView;
    try {
      account = await node.call("accounts.create", { workspaceId: "wil" });
    } finally {
      restore();
    }
    const list = await node.call<{ items: AccountView[] }, object>("accounts.list", { workspaceId: "wil" });
    assert.deepEqual(
      list.items.map((a) => a.id),
      [account.id],
      "one account",
    );
    const created = (await wholeLog(node, "wil")).filter((e) => e.event === "account.created");
    assert.equal(created.length, 1, "account.created logged once");
    await waitFor(
      async () =>
        (await node.call<AccountView, object>("accounts.get", { workspaceId: "wil", accountId: account.id }))
          .status === "qr_scanning",
      { what: "the account to start" },
    );
  });
});
