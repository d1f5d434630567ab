// A logout of an account that runs nowhere (failed here: its QR expired) whose auth-state deletion meets
// a busy database ("database is locked", which FerretDB answers under write load): the deletion is
// tried again, and `logged_out` is announced (logged, broadcast) once. Real NATS and FerretDB.
import { strict as assert } from "node:assert";
import type { ServiceBroker } from "moleculer";
import AccountsService from "../../../services/accounts.service.ts";
import SessionService from "../../../services/session.service.ts";
import type { AccountView } from "../../../src/accounts/types.ts";
import type { GridFsAuthStore } from "../../../src/store/auth-store.ts";
import { TestCluster } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";
import { wholeLog } from "../events/support.ts";

describe("session: a logout of an idle account", function () {
  this.timeout(30000);
  let cluster: TestCluster;
  let node: ServiceBroker;

  before(async () => {
    cluster = new TestCluster({ qr: { firstTtlMs: 300, refreshMs: 300, max: 1 } }, "logoutidle");
    node = cluster.node("n1", [AccountsService, SessionService]);
    await cluster.start();
  });
  after(async () => cluster?.stop());

  it("whose auth-state deletion meets a busy database: deleted on a retry, logged_out announced once", async () => {
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
});
