// Accounts whose session ended with a verdict that needs a person (their QR expired), so they run
// nowhere: a logout whose auth-state deletion meets a busy database ("database is locked", which
// FerretDB answers under write load) deletes it on a retry and announces `logged_out` once; a restart
// that fails after it set the account wanted running (its start met the database away) leaves it to
// the owner's reconciler, which starts it, rather than stopped until the next failover. Real NATS and
// FerretDB.
import { strict as assert } from "node:assert";
import type { ServiceBroker } from "moleculer";
import AccountsService from "../../../services/accounts.service.ts";
import SessionService from "../../../services/session.service.ts";
import { MongoClient } from "mongodb";
import type { AccountDoc, AccountView } from "../../../src/accounts/types.ts";
import { DatabaseUnavailableError } from "../../../src/errors.ts";
import { COLLECTIONS } from "../../../src/store/mongo.ts";
import type { OwnedAccounts } from "../../../src/session/owned-accounts.ts";
import type { GridFsAuthStore } from "../../../src/store/auth-store.ts";
import { TestCluster } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";
import { wholeLog } from "../events/support.ts";

describe("session: an account its QR's expiry left idle", function () {
  this.timeout(30000);
  let cluster: TestCluster;
  let node: ServiceBroker;

  before(async () => {
    cluster = new TestCluster({ qr: { firstTtlMs: 300, refreshMs: 300, max: 1 } }, "idleverdict");
    node = cluster.node("n1", [AccountsService, SessionService]);
    await cluster.start();
  });
  after(async () => cluster?.stop());

  it("a logout whose auth-state deletion meets a busy database: deleted on a retry, logged_out announced once", async () => {
    const account: AccountView = await node.call("accounts.create", { workspaceId: "wli" });
    const get = () =>
      node.call<AccountView, object>("accounts.get", { workspaceId: "wli", accountId: account.id });
    await waitFor(async () => (await get()).status === "failed", { what: "the QR to expire" });
    const store = (node.getLocalService("session") as unknown as { authStore: GridFsAuthStore }).authStore;
    const real = store.delete.bind(store);
    let refused = 0;
    store.delete = async (...args: Parameters<GridFsAuthStore["delete"]>) => {
      if (refused++ === 0) throw new Error("database is locked");
      return real(...args);
    };
    try {
      await node.call("accounts.logout", { workspaceId: "wli", accountId: account.id });
    } finally {
      store.delete = real;
    }
    assert.equal(refused, 2, "tried again after the busy answer");
    assert.equal((await get()).status, "logged_out");
    const announced = (await wholeLog(node, "wli")).filter(
      (e) => e.event === "account.status" && (e.payload as { status: string }).status === "logged_out",
    );
    assert.equal(announced.length, 1);
  });

  it("a restart that fails halfway leaves it wanted running: its owner starts it", async () => {
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

  it("a logout on a node fenced out of the account leaves the newer owner's auth state alone", async () => {
    const account: AccountView = await node.call("accounts.create", { workspaceId: "wlf" });
    const ids = { workspaceId: "wlf", accountId: account.id };
    const get = () => node.call<AccountView, object>("accounts.get", ids);
    await waitFor(async () => (await get()).status === "failed", { what: "the QR to expire" });
    // Another node took the account over (a newer epoch) and saved its auth state; this node, not told
    // yet, still holds the workspace.
    const client = await MongoClient.connect(cluster.mongoUrl);
    try {
      const accounts = client.db().collection<AccountDoc>(COLLECTIONS.accounts);
      const doc = (await accounts.findOne({ _id: account.id }))!;
      const newer = { node: "n2", epoch: (doc.epoch ?? 0) + 1 };
      await accounts.updateOne({ _id: account.id }, { $set: newer });
      const store = (node.getLocalService("session") as unknown as { authStore: GridFsAuthStore }).authStore;
      await store.save(doc.sessionId, Buffer.from("n2's credentials"), newer);
      await assert.rejects(node.call("accounts.logout", ids), { type: "NOT_OWNER" });
      assert.ok(await store.has(doc.sessionId), "the newer owner's auth state is kept");
      assert.equal((await accounts.findOne({ _id: account.id }))?.node, "n2");
    } finally {
      await client.close();
    }
  });
});
