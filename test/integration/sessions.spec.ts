// The accounts + session services on real NATS and FerretDB (DESIGN.md, "Account lifecycle"):
// what a user of the API would see, event by event, and what is left in MongoDB afterwards.
import { strict as assert } from "node:assert";
import { MongoClient, type Db } from "mongodb";
import type { ServiceBroker, ServiceSchema } from "moleculer";
import AccountsService from "../../services/accounts.service.ts";
import SessionService from "../../services/session.service.ts";
import type { AccountDoc, AccountView } from "../../src/accounts/types.ts";
import { GridFsAuthStore } from "../../src/store/auth-store.ts";
import { TestCluster, type ConfigOverrides } from "../support/cluster.ts";
import { waitFor } from "../support/wait.ts";

interface Recorded {
  event: string;
  payload: any;
}

/** A service that records every account.* event it receives, in arrival order. */
function recorder(into: Recorded[]): ServiceSchema {
  const on = (event: string) => (ctx: any) => void into.push({ event, payload: ctx.params });
  return {
    name: "recorder",
    events: Object.fromEntries(
      [
        "account.created",
        "account.status",
        "account.qr",
        "account.pairing_code",
        "account.message",
        "account.deleted",
      ].map((e) => [e, on(e)]),
    ),
  };
}

/** The events of one account, compactly: "status:qr_scanning", "qr:1", ... */
function trail(events: Recorded[], accountId: string): string[] {
  return events
    .filter((r) => (r.payload.accountId ?? r.payload.account?.id) === accountId)
    .map((r) => {
      if (r.event === "account.status") return `status:${r.payload.status}`;
      if (r.event === "account.qr") return `qr:${r.payload.seq}`;
      return r.event.replace("account.", "");
    });
}

describe("sessions: accounts + session services (simulated engine)", function () {
  this.timeout(30000);

  async function setup(shared: ConfigOverrides = {}, layout: "one" | "three" = "one") {
    const cluster = new TestCluster(shared, "sess");
    const events: Recorded[] = [];
    let api: ServiceBroker;
    if (layout === "one") {
      api = cluster.node("n1", [AccountsService, SessionService, recorder(events)]);
    } else {
      api = cluster.node("gw", [AccountsService, recorder(events)]);
      cluster.node("w1", [SessionService]);
      cluster.node("w2", [SessionService]);
    }
    await cluster.start();
    await api.waitForServices(["accounts", "session"], 10000);
    const client = await MongoClient.connect(cluster.mongoUrl);
    const db = client.db();
    return { cluster, events, api, client, db, authStore: new GridFsAuthStore(db) };
  }

  type Ctx = Awaited<ReturnType<typeof setup>>;
  let t: Ctx;
  const ws = "ws_1";

  async function teardown() {
    if (!t) return;
    await t.cluster.stop();
    await t.client.close();
  }

  const doc = (db: Db, id: string) => db.collection<AccountDoc>("accounts").findOne({ _id: id });

  describe("on one node", () => {
    before(async () => {
      t = await setup();
    });
    after(teardown);

    it("create → qr_scanning with a QR → scan → connected; each event once, in order; doc matches", async () => {
      const created: AccountView = await t.api.call("accounts.create", { workspaceId: ws, name: "Sales" });
      assert.equal(created.status, "initializing");
      assert.match(created.sessionId, new RegExp(`^simulated_${ws}_\\d{10}_[a-z0-9]{8}$`));

      const qrEvent = await waitFor(
        () => t.events.find((r) => r.event === "account.qr" && r.payload.accountId === created.id),
        { what: "first QR" },
      );
      assert.match(
        qrEvent.payload.qr,
        /^2@[A-Za-z0-9+/=]+,[A-Za-z0-9+/=]{44},[A-Za-z0-9+/=]{44},[A-Za-z0-9+/=]{44}$/,
      );
      assert.match(qrEvent.payload.dataUrl, /^data:image\/png;base64,/);
      assert.equal(qrEvent.payload.seq, 1);

      const qr: { seq: number } = await t.api.call("accounts.qr", { workspaceId: ws, id: created.id });
      assert.equal(qr.seq >= 1, true);

      await t.api.call("accounts.simulate", {
        workspaceId: ws,
        id: created.id,
        action: "scan",
        phoneNumber: "15551234567",
      });
      await waitFor(
        () => t.events.find((r) => r.event === "account.status" && r.payload.status === "connected"),
        {
          what: "connected event",
        },
      );

      // QR refreshes may have happened before the scan: collapse them, then the order is exact.
      const seen = trail(t.events, created.id);
      const qrs = seen.filter((e) => e.startsWith("qr:"));
      assert.deepEqual(
        qrs,
        qrs.map((_, i) => `qr:${i + 1}`),
        "QRs numbered 1..n, each once",
      );
      assert.deepEqual(
        seen.filter((e) => !e.startsWith("qr:")),
        ["created", "status:qr_scanning", "status:authenticated", "status:connected"],
      );
      assert.equal(seen[2], "qr:1", "the first QR follows the qr_scanning status");

      const statuses = t.events.filter(
        (r) => r.event === "account.status" && r.payload.accountId === created.id,
      );
      assert.deepEqual(
        statuses.map((r) => r.payload.previousStatus),
        ["initializing", "qr_scanning", "authenticated"],
      );
      const last = statuses.at(-1)!.payload;
      assert.equal(last.phoneNumber, "15551234567");
      assert.equal(last.node, "n1");
      assert.equal(last.epoch, 1);

      const d = (await doc(t.db, created.id))!;
      assert.equal(d.status, last.status);
      assert.equal(d.phoneNumber, last.phoneNumber);
      assert.equal(d.node, last.node);
      assert.equal(d.epoch, last.epoch);
      assert.equal(d.qr, null, "QR cleared once scanned");
      assert.equal(new Date(d.updatedAt).toISOString(), last.at);
      assert.ok(await t.authStore.has(d.sessionId), "auth state saved");

      const view: AccountView = await t.api.call("accounts.get", { workspaceId: ws, id: created.id });
      assert.equal(view.status, "connected");
      assert.equal(view.phoneNumber, "15551234567");
    });
  });
});
