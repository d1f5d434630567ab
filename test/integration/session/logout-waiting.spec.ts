// A logout of an account still waiting for its start slot, and a restore pass that read the account
// before the logout's write: the restore must not open it again (a session running an account wanted
// stopped, asking for a scan nobody wants). Real FerretDB, the real accounts repository and auth store
// under a real SessionRuntime; the slots are held at the engines' auth-state reads, and the logout's
// status write at its start.
import { strict as assert } from "node:assert";
import { MongoClient, type Db } from "mongodb";
import type { AccountDoc } from "../../../src/accounts/types.ts";
import type { Fence } from "../../../src/placement/fence.ts";
import type { Publisher } from "../../../src/session/event-publisher.ts";
import { SessionRuntime } from "../../../src/session/runtime.ts";
import { AccountsRepo, type StatusPatch } from "../../../src/store/accounts-repo.ts";
import { GridFsAuthStore } from "../../../src/store/auth-store.ts";
import { mongoUrlFor } from "../../support/env.ts";
import { waitFor } from "../../support/wait.ts";

const WS = "logoutwait";
const FENCE: Fence = { node: "n1", epoch: 2 };
const NO_EVENTS: Publisher = { record: async (_e, p) => p, send: () => undefined };
const quiet = { info() {}, warn() {}, error() {}, debug() {} } as never;

/** A gate a test opens: `reached` once something waits at it. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  const state = { waiting: 0 };
  return { opened, open, state };
}

class HeldRepo extends AccountsRepo {
  readonly logoutWrite = gate();
  override async writeStatus(id: string, fence: Fence, patch: StatusPatch): Promise<boolean> {
    if (patch.status === "logged_out") {
      this.logoutWrite.state.waiting++;
      await this.logoutWrite.opened;
    }
    return super.writeStatus(id, fence, patch);
  }
}

class HeldAuthStore extends GridFsAuthStore {
  readonly loads = gate();
  override async load(
    sessionId: string,
    stamp?: Parameters<GridFsAuthStore["load"]>[1],
  ): Promise<Buffer | null> {
    this.loads.state.waiting++;
    await this.loads.opened;
    return super.load(sessionId, stamp);
  }
}

describe("session runtime: a logout of an account waiting for its start slot", function () {
  this.timeout(30000);
  let client: MongoClient;
  let db: Db;

  before(async () => {
    client = await MongoClient.connect(mongoUrlFor(`logoutwait_${process.pid}`));
    db = client.db();
  });
  after(async () => {
    await db?.dropDatabase().catch(() => undefined);
    await client?.close();
  });

  /** Accounts connected on a lost node (n0, an older epoch), wanted running. */
  async function lostAccounts(repo: AccountsRepo, ids: string[]): Promise<AccountDoc[]> {
    const now = new Date();
    const docs: AccountDoc[] = ids.map((id) => ({
      _id: id,
      workspaceId: WS,
      sessionId: `s_${id}`,
      name: id,
      engine: "simulated",
      desiredState: "running",
      status: "connected",
      node: "n0",
      epoch: 1,
      createdAt: now,
      updatedAt: now,
    }));
    await repo.col.insertMany(docs);
    return docs;
  }

  it("a restore that read the account before the logout's write does not open it again", async () => {
    const repo = new HeldRepo(db);
    const authStore = new HeldAuthStore(db);
    const runtime = new SessionRuntime({
      nodeId: FENCE.node,
      repo,
      authStore,
      ownership: { current: () => FENCE, acquire: async () => FENCE },
      publisher: NO_EVENTS,
      engine: { qr: { firstTtlMs: 60000, refreshMs: 20000, max: 5 }, simulatedAckMs: 10 },
      startConcurrency: 2,
      logger: quiet,
    });
    try {
      const docs = await lostAccounts(repo, ["w1", "w2", "w3"]);
      await runtime.startMany(docs);
      await waitFor(() => authStore.loads.state.waiting === 2, { what: "two starts to hold the slots" });
      assert.ok(runtime.has("w3"), "w3 waits for a slot");
      // What a reconciler pass reads now: w3 claimed here, `initializing`, wanted running.
      const [read] = await repo.byIds(["w3"]);
      assert.equal(read.status, "initializing");

      const logout = runtime.logout("w3");
      await waitFor(() => repo.logoutWrite.state.waiting === 1, { what: "the logout's status write" });
      const restore = runtime.startMany([read]);
      repo.logoutWrite.open();
      assert.equal(await logout, "logged_out");
      await restore;

      assert.equal(runtime.has("w3"), false, "not opened again");
      const [stored] = await repo.byIds(["w3"]);
      assert.equal(stored.status, "logged_out");
      assert.equal(stored.desiredState, "stopped");
    } finally {
      repo.logoutWrite.open();
      authStore.loads.open();
      await runtime.stopAll();
    }
  });
});
