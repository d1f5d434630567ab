// The accounts + session services on real NATS and FerretDB (DESIGN.md, "Account lifecycle"):
// what a user of the API would see, event by event, and what is left in MongoDB afterwards.
import { testSecrets } from "../support/env.ts";
import { strict as assert } from "node:assert";
import { MongoClient, type Db } from "mongodb";
import type { ServiceBroker, ServiceSchema } from "moleculer";
import AccountsService from "../../services/accounts.service.ts";
import SessionService from "../../services/session.service.ts";
import { newAccountDoc, type AccountDoc, type AccountView } from "../../src/accounts/types.ts";
import type { Engine } from "../../src/engines/base.ts";
import { registerEngine } from "../../src/engines/index.ts";
import { createSimulatedEngine } from "../../src/engines/simulated.ts";
import { NotOwnerError } from "../../src/errors.ts";
import type { SessionRuntime } from "../../src/session/runtime.ts";
import { AccountsRepo } from "../../src/store/accounts-repo.ts";
import { GridFsAuthStore } from "../../src/store/auth-store.ts";
import { TestCluster, type ConfigOverrides } from "../support/cluster.ts";
import { landThenLoseAnswer } from "../support/answer-lost.ts";
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
    return { cluster, events, api, client, db, authStore: new GridFsAuthStore(db, testSecrets()) };
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
  /** broker.call on the node that hosts `accounts`, untyped (results are checked by the assertions). */
  const call = (action: string, params?: object, opts?: object): Promise<any> =>
    t.api.call(action, params, opts as never);
  const isStatus = (r: Recorded, id: string, status: string) =>
    r.event === "account.status" && r.payload.accountId === id && r.payload.status === status;
  const statusEvent = (id: string, status: string) => t.events.find((r) => isStatus(r, id, status));
  const QRS = (n: number) => Array.from({ length: n }, (_, i) => `qr:${i + 1}`);

  /** Creates an account in `workspaceId` and links it to `phone`; resolves once connected. */
  async function connected(phone: string, workspaceId = ws, api = t.api): Promise<AccountView> {
    const created: AccountView = await api.call("accounts.create", { workspaceId });
    await waitFor(() => statusEvent(created.id, "qr_scanning"), { what: `${created.id} scanning` });
    await api.call("accounts.simulate", {
      workspaceId,
      accountId: created.id,
      action: "scan",
      phoneNumber: phone,
    });
    await waitFor(() => statusEvent(created.id, "connected"), { what: `${created.id} connected` });
    return created;
  }

  describe("on one node", () => {
    before(async () => {
      // A first QR that outlives a slow CI scheduler; refreshes stay fast for the qr_timeout test.
      t = await setup({ qr: { firstTtlMs: 1500, refreshMs: 100, max: 6 } });
    });
    after(teardown);

    it("create → qr_scanning with a QR → scan → connected; each event once, in order; doc matches", async () => {
      const created: AccountView = await call("accounts.create", { workspaceId: ws, name: "Sales" });
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

      const qr: { seq: number } = await call("accounts.qr", { workspaceId: ws, accountId: created.id });
      assert.equal(qr.seq >= 1, true);

      await call("accounts.simulate", {
        workspaceId: ws,
        accountId: created.id,
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
      assert.ok(Number.isInteger(last.epoch) && last.epoch >= 1, `epoch ${last.epoch}`);

      const d = (await doc(t.db, created.id))!;
      assert.equal(d.status, last.status);
      assert.equal(d.phoneNumber, last.phoneNumber);
      assert.equal(d.node, last.node);
      assert.equal(d.epoch, last.epoch);
      assert.equal("qr" in d, false, "QR codes live in the owner's runtime, never in the document");
      assert.equal(new Date(d.updatedAt).toISOString(), last.at);
      assert.ok(await t.authStore.has(d.sessionId), "auth state saved");

      const view: AccountView = await call("accounts.get", { workspaceId: ws, accountId: created.id });
      assert.equal(view.status, "connected");
      assert.equal(view.phoneNumber, "15551234567");
    });

    it("QR refreshes the configured number of times, then failed/qr_timeout (and no more QRs)", async () => {
      const { id } = await call("accounts.create", { workspaceId: ws });
      const failed = await waitFor(() => statusEvent(id, "failed"), { what: "failed/qr_timeout" });
      assert.equal(failed.payload.reason, "qr_timeout");
      assert.equal(failed.payload.previousStatus, "qr_scanning");
      assert.deepEqual(trail(t.events, id), ["created", "status:qr_scanning", ...QRS(6), "status:failed"]);
      const d = (await doc(t.db, id))!;
      assert.equal(d.status, "failed");
      assert.equal(d.reason, "qr_timeout");
      assert.equal("qr" in d, false);
      assert.equal(
        d.desiredState,
        "stopped",
        "a QR timeout needs a person: the account stops wanting to run",
      );
      await assert.rejects(call("accounts.qr", { workspaceId: ws, accountId: id }), {
        code: 409,
        type: "INVALID_STATE",
      });
      const local: any[] = await call("session.local", {}, { nodeID: "n1" });
      assert.ok(!local.some((s) => s.accountId === id), "no engine left running");
    });

    it("logout → logged_out, auth state gone, phone number cleared", async () => {
      const { id, sessionId } = await connected("15550000001");
      const view: AccountView = await call("accounts.logout", { workspaceId: ws, accountId: id });
      assert.equal(view.status, "logged_out");
      assert.equal(view.phoneNumber, undefined);
      assert.equal(await t.authStore.has(sessionId), false);
      const ev = await waitFor(() => statusEvent(id, "logged_out"), { what: "logged_out event" });
      assert.equal(ev.payload.previousStatus, "connected");
      assert.equal((await doc(t.db, id))!.desiredState, "stopped");
    });

    it("logout of an account no engine runs (its record still says connected) → logged_out, announced", async () => {
      const { id, sessionId } = await connected("15550000011");
      const runtime = (t.api.getLocalService("session") as unknown as { runtime: SessionRuntime }).runtime;
      // As a lost node leaves it: the engine gone, the record untouched.
      await runtime.stop(id, { persist: false });
      assert.equal((await doc(t.db, id))!.status, "connected");
      const view: AccountView = await call("accounts.logout", { workspaceId: ws, accountId: id });
      assert.equal(view.status, "logged_out");
      assert.equal(view.phoneNumber, undefined);
      assert.equal(await t.authStore.has(sessionId), false);
      // (A reconciler pass may have started it again meanwhile: then its engine logs it out.)
      await waitFor(() => statusEvent(id, "logged_out"), { what: "logged_out event" });
      const d = (await doc(t.db, id))!;
      assert.deepEqual([d.status, d.desiredState, d.phoneNumber], ["logged_out", "stopped", null]);
      // A second logout changes and announces nothing.
      const mark = t.events.length;
      assert.equal((await call("accounts.logout", { workspaceId: ws, accountId: id })).status, "logged_out");
      assert.deepEqual(trail(t.events.slice(mark), id), []);
    });

    it("logout of an account no engine runs, its write landed but its answer lost: logged_out, announced", async () => {
      const { id } = await connected("15550000012");
      const session = t.api.getLocalService("session") as unknown as {
        runtime: SessionRuntime;
        repo: { col: object };
      };
      await session.runtime.stop(id, { persist: false });
      const restore = landThenLoseAnswer(
        session.repo.col as { findOneAndUpdate: unknown },
        "findOneAndUpdate",
      );
      try {
        const view: AccountView = await call("accounts.logout", { workspaceId: ws, accountId: id });
        assert.equal(view.status, "logged_out");
      } finally {
        restore();
      }
      await waitFor(() => statusEvent(id, "logged_out"), { what: "logged_out event" });
      assert.equal(statusEvent(id, "logged_out")!.payload.previousStatus, "connected");
    });

    it("a restore that read the account before its logout does not bring it back: logged_out, nothing runs", async () => {
      const { id } = await connected("15550000014");
      const session = t.api.getLocalService("session") as unknown as {
        runtime: SessionRuntime;
        owned: { authStore: { delete(sessionId: string): Promise<void> } };
      };
      // As a lost node leaves it: the engine gone, the record untouched (connected, wanted running).
      await session.runtime.stop(id, { persist: false });
      const lost = (await doc(t.db, id))!;
      const store = session.owned.authStore;
      const realDelete = store.delete.bind(store);
      let reached!: () => void;
      const atDelete = new Promise<void>((resolve) => (reached = resolve));
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      store.delete = async (sessionId) => {
        reached();
        await gate;
        return realDelete(sessionId);
      };
      try {
        const mark = t.events.length;
        const logout = call("accounts.logout", { workspaceId: ws, accountId: id });
        await atDelete;
        // The failover's restore, with what it read of the account before the logout.
        await session.runtime.startMany([lost]);
        release();
        const view: AccountView = await logout;
        assert.equal(view.status, "logged_out");
        // Whatever the restore queued has settled: nothing runs, nothing shows a QR.
        await session.runtime.stop(id);
        assert.equal(session.runtime.has(id), false);
        const d = (await doc(t.db, id))!;
        assert.deepEqual([d.status, d.desiredState], ["logged_out", "stopped"]);
        assert.ok(!trail(t.events.slice(mark), id).includes("status:qr_scanning"), "no QR shown");
      } finally {
        release();
        store.delete = realDelete;
      }
    });

    it("logout of a stopped or failed account → logged_out: its saved device is gone, a restart asks for a scan", async () => {
      const { id, sessionId } = await connected("15550000012");
      await call("session.stop", { workspaceId: ws, accountId: id });
      assert.equal((await doc(t.db, id))!.status, "stopped");
      assert.equal(await t.authStore.has(sessionId), true);
      const view: AccountView = await call("accounts.logout", { workspaceId: ws, accountId: id });
      assert.equal(view.status, "logged_out");
      assert.equal(await t.authStore.has(sessionId), false);
      const ev = await waitFor(() => statusEvent(id, "logged_out"), {
        what: "logged_out of the stopped one",
      });
      assert.equal(ev.payload.previousStatus, "stopped");
      assert.equal(view.phoneNumber, undefined);
      const mark = t.events.length;
      await call("accounts.restart", { workspaceId: ws, accountId: id });
      await waitFor(() => t.events.slice(mark).find((r) => isStatus(r, id, "qr_scanning")), {
        what: "a QR for the restarted account",
      });
      assert.ok(!trail(t.events.slice(mark), id).includes("status:authenticated"), "nothing restored");

      const timedOut = (await call("accounts.create", { workspaceId: ws })) as AccountView;
      await waitFor(() => statusEvent(timedOut.id, "failed"), { what: "failed/qr_timeout" });
      const after: AccountView = await call("accounts.logout", { workspaceId: ws, accountId: timedOut.id });
      assert.equal(after.status, "logged_out");
      const failedEv = await waitFor(() => statusEvent(timedOut.id, "logged_out"), {
        what: "logged_out of the failed one",
      });
      assert.equal(failedEv.payload.previousStatus, "failed");
      const d = (await doc(t.db, timedOut.id))!;
      assert.deepEqual([d.status, d.desiredState, d.reason], ["logged_out", "stopped", null]);
    });

    it("an account left stopped yet wanted running (a restart whose start failed) is started by the next pass", async () => {
      const { id } = await connected("15550000021");
      const session = t.api.getLocalService("session") as unknown as {
        runtime: SessionRuntime;
        workerNode: { kick(): void };
      };
      // What restart's stop leaves when its start never comes: `stopped`, desired `running`.
      await session.runtime.stop(id);
      const stopped = (await doc(t.db, id))!;
      assert.deepEqual([stopped.status, stopped.desiredState], ["stopped", "running"]);
      const mark = t.events.length;
      session.workerNode.kick();
      await waitFor(() => t.events.slice(mark).find((r) => isStatus(r, id, "connected")), {
        what: "the account back, from its saved auth state",
      });
      assert.deepEqual(trail(t.events.slice(mark), id), [
        "status:initializing",
        "status:authenticated",
        "status:connected",
      ]);
    });

    it("an account whose record shows it connected under this node's fence but runs nowhere here is started again", async () => {
      const { id } = await connected("15550000022");
      const session = t.api.getLocalService("session") as unknown as {
        runtime: SessionRuntime;
        workerNode: { kick(): void };
      };
      // What a stop leaves whose `stopped` the database did not take (an outage): the record unchanged.
      await session.runtime.stop(id, { persist: false });
      assert.equal((await doc(t.db, id))!.status, "connected");
      const mark = t.events.length;
      session.workerNode.kick();
      await waitFor(() => t.events.slice(mark).find((r) => isStatus(r, id, "connected")), {
        what: "the account back, from its saved auth state",
      });
      assert.ok(session.runtime.has(id));
    });

    it("restart after connected → connected again from the saved auth state, with no QR", async () => {
      const { id } = await connected("15550000002");
      const mark = t.events.length;
      const view: AccountView = await call("accounts.restart", { workspaceId: ws, accountId: id });
      assert.ok(["initializing", "authenticated", "connected"].includes(view.status), view.status);
      await waitFor(() => t.events.slice(mark).find((r) => isStatus(r, id, "connected")), {
        what: "reconnected",
      });
      assert.deepEqual(trail(t.events.slice(mark), id), [
        "status:stopped",
        "status:initializing",
        "status:authenticated",
        "status:connected",
      ]);
      const d = (await doc(t.db, id))!;
      assert.equal(d.status, "connected");
      assert.equal(d.phoneNumber, "15550000002");
    });

    it("disconnect → disconnected, then reconnects; messages, sendText and pairing codes relay", async () => {
      const { id } = await connected("15550000003");
      const mark = t.events.length;
      await call("accounts.simulate", { workspaceId: ws, accountId: id, action: "disconnect" });
      await waitFor(() => t.events.slice(mark).find((r) => isStatus(r, id, "connected")), {
        what: "reconnect",
      });
      assert.deepEqual(trail(t.events.slice(mark), id), ["status:disconnected", "status:connected"]);

      await call("accounts.simulate", {
        workspaceId: ws,
        accountId: id,
        action: "message",
        from: "15559990000",
        text: "hi",
      });
      const msg = await waitFor(() =>
        t.events.find((r) => r.event === "account.message" && r.payload.accountId === id),
      );
      assert.equal(msg.payload.from, "15559990000");
      assert.equal(msg.payload.text, "hi");
      assert.equal(msg.payload.workspaceId, ws);

      const sent = await call("accounts.sendText", {
        workspaceId: ws,
        accountId: id,
        to: "15559990000",
        text: "hello",
      });
      assert.ok(sent.id);

      const fresh = await call("accounts.create", { workspaceId: ws });
      await waitFor(() => statusEvent(fresh.id, "qr_scanning"));
      const { code } = await call("accounts.pairingCode", {
        workspaceId: ws,
        accountId: fresh.id,
        phoneNumber: "15550004444",
      });
      assert.match(code, /^[A-Z0-9]{8}$/);
      const ev = await waitFor(() =>
        t.events.find((r) => r.event === "account.pairing_code" && r.payload.accountId === fresh.id),
      );
      assert.equal(ev.payload.code, code);
      await assert.rejects(
        call("accounts.sendText", { workspaceId: ws, accountId: fresh.id, to: "15550001111", text: "x" }),
        {
          code: 409,
        },
      );
      // A `to` that is neither a phone number nor a chat id is refused before the engine is asked.
      await assert.rejects(
        call("accounts.sendText", { workspaceId: ws, accountId: fresh.id, to: "1555", text: "x" }),
        { code: 422, type: "INVALID_RECIPIENT" },
      );
    });

    it("delete leaves no document, no auth blob and no running engine", async () => {
      const { id, sessionId } = await connected("15550000005");
      const res = await call("accounts.remove", { workspaceId: ws, accountId: id });
      assert.deepEqual(res, { id, deleted: true });
      assert.equal(await doc(t.db, id), null);
      assert.equal(await t.authStore.has(sessionId), false);
      const local: any[] = await call("session.local", {}, { nodeID: "n1" });
      assert.ok(!local.some((s) => s.accountId === id));
      const deleted = await waitFor(() =>
        t.events.find((r) => r.event === "account.deleted" && r.payload.accountId === id),
      );
      // Logged events carry their event-log cursor.
      const { cursor, ...payload } = deleted.payload;
      assert.deepEqual(payload, { accountId: id, workspaceId: ws, sessionId });
      assert.match(cursor, /^[1-9][0-9]*$/);
      await assert.rejects(call("accounts.get", { workspaceId: ws, accountId: id }), {
        code: 404,
        type: "NOT_FOUND",
      });
    });

    it("a delete whose write landed but whose answer was lost is still announced", async () => {
      const { id, sessionId } = await connected("15550000018");
      const repo = (t.api.getLocalService("accounts") as unknown as { repo: AccountsRepo }).repo;
      // The retry of the delete finds nothing: its first try deleted the account.
      const restore = landThenLoseAnswer(repo.col, "deleteOne");
      try {
        assert.deepEqual(await call("accounts.remove", { workspaceId: ws, accountId: id }), {
          id,
          deleted: true,
        });
      } finally {
        restore();
      }
      const deleted = await waitFor(
        () => t.events.find((r) => r.event === "account.deleted" && r.payload.accountId === id),
        { what: "account.deleted" },
      );
      assert.equal(deleted.payload.sessionId, sessionId);
      assert.equal(await doc(t.db, id), null);
    });

    it("a delete that stopped half-way (auth state retired, document left): restart is refused, a second delete finishes", async () => {
      const { id, sessionId } = await connected("15550000015");
      await call("session.stop", { workspaceId: ws, accountId: id });
      // What accounts.remove did before a later step failed (the database gone for a moment).
      await new AccountsRepo(t.db).markDeleting(ws, id, new Date());
      await t.authStore.retire(sessionId);
      await assert.rejects(call("accounts.restart", { workspaceId: ws, accountId: id }), (err: any) => {
        assert.equal(err.code, 409);
        assert.equal(err.type, "INVALID_STATE");
        assert.match(err.message, /being deleted/);
        return true;
      });
      assert.equal((await doc(t.db, id))!.desiredState, "stopped", "not wanted running again");
      const local: any[] = await call("session.local", {}, { nodeID: "n1" });
      assert.ok(!local.some((s) => s.accountId === id), "not started");
      assert.deepEqual(await call("accounts.remove", { workspaceId: ws, accountId: id }), {
        id,
        deleted: true,
      });
      assert.equal(await doc(t.db, id), null);
    });

    it("a start that meets a delete begun after its checks is a 409 INVALID_STATE, not NOT_OWNER; the delete then finishes", async () => {
      const { id } = await connected("15550000016");
      await call("session.stop", { workspaceId: ws, accountId: id });
      // What accounts.remove writes first, landing between a restart's check and its start.
      await new AccountsRepo(t.db).markDeleting(ws, id, new Date());
      await assert.rejects(call("session.start", { workspaceId: ws, accountId: id }), (err: any) => {
        assert.equal(err.code, 409);
        assert.equal(err.type, "INVALID_STATE");
        assert.match(err.message, /being deleted/);
        return true;
      });
      assert.deepEqual(await call("accounts.remove", { workspaceId: ws, accountId: id }), {
        id,
        deleted: true,
      });
    });

    it("a restart that comes right after a logout's owner answered keeps the account wanted running", async () => {
      const { id } = await connected("15550000017");
      const broker = t.api;
      const realCall = broker.call.bind(broker);
      let restarted: Promise<unknown> | null = null;
      // The owner's logout answers; before the gateway's logout returns, a restart comes and ends.
      broker.call = (async (action: string, params?: unknown, opts?: unknown) => {
        const result = await realCall(action, params as object, opts as object);
        if (action === "session.logout" && !restarted) {
          restarted = realCall("accounts.restart", { workspaceId: ws, accountId: id });
          await restarted;
        }
        return result;
      }) as typeof broker.call;
      try {
        await call("accounts.logout", { workspaceId: ws, accountId: id });
      } finally {
        broker.call = realCall;
      }
      assert.ok(restarted, "the restart ran");
      const d = (await doc(t.db, id))!;
      assert.equal(d.desiredState, "running", "the restart came last");
      await call("session.stop", { workspaceId: ws, accountId: id });
    });

    it("tenancy and input: other workspace is 404, unknown engine 422, bad workspace id 422", async () => {
      const { id } = await call("accounts.create", { workspaceId: ws });
      await assert.rejects(call("accounts.get", { workspaceId: "ws_other", accountId: id }), { code: 404 });
      await assert.rejects(call("accounts.remove", { workspaceId: "ws_other", accountId: id }), {
        code: 404,
      });
      const other = await call("accounts.list", { workspaceId: "ws_other" });
      assert.deepEqual(other.items, []);
      const mine = await call("accounts.list", { workspaceId: ws });
      // A null limit (a socket call's JSON) is no limit, not an empty "last page".
      const unlimited = await call("accounts.list", { workspaceId: ws, limit: null, cursor: null });
      assert.deepEqual(
        unlimited.items.map((a: AccountView) => a.id),
        mine.items.map((a: AccountView) => a.id),
      );
      assert.ok(mine.items.some((a: AccountView) => a.id === id));
      await assert.rejects(call("accounts.create", { workspaceId: ws, engine: "nope" }), {
        code: 422,
        type: "UNKNOWN_ENGINE",
      });
      await assert.rejects(call("accounts.create", { workspaceId: "bad id!" }), { code: 422 });
      await assert.rejects(call("accounts.simulate", { workspaceId: ws, accountId: id, action: "fly" }), {
        code: 422,
      });
    });

    it("a session whose account another owner took stops at its next write, writing and broadcasting nothing", async () => {
      const { id } = await connected("15550000006");
      const d0 = (await doc(t.db, id))!;
      await new AccountsRepo(t.db).claim(id, { node: "elsewhere", epoch: (d0.epoch ?? 1) + 1 });
      const mark = t.events.length;
      await call(
        "session.simulate",
        { workspaceId: ws, accountId: id, action: "disconnect" },
        { nodeID: "n1" },
      );
      await waitFor(
        async () => !(await call("session.local", {}, { nodeID: "n1" })).some((s: any) => s.accountId === id),
        {
          what: "fenced-out engine to stop",
        },
      );
      assert.deepEqual(trail(t.events.slice(mark), id), [], "a fenced-out node broadcasts nothing");
      const d = (await doc(t.db, id))!;
      assert.equal(d.status, "connected", "the new owner's document is untouched");
      assert.equal(d.node, "elsewhere");
      await call("accounts.remove", { workspaceId: ws, accountId: id }).catch(() => undefined);
    });

    it("a fenced-out node's auth-state save changes nothing stored, and stops its session", async () => {
      const { id } = await connected("15550000016");
      const d0 = (await doc(t.db, id))!;
      const next = { node: "elsewhere", epoch: (d0.epoch ?? 1) + 1 };
      // The new owner restores the state (recording itself as its owner), then saves its own.
      assert.ok(await t.authStore.load(d0.sessionId, next), "the old owner saved a state");
      const theirs = Buffer.from("the new owner's state");
      await t.authStore.save(d0.sessionId, theirs, next);
      const runtime = (t.api.getLocalService("session") as unknown as { runtime: SessionRuntime }).runtime;
      await assert.rejects(
        runtime.drive(id, (engine) => engine.flushAuthState()),
        NotOwnerError,
      );
      assert.ok(
        (await t.authStore.load(d0.sessionId))!.equals(theirs),
        "the stored state is the new owner's",
      );
      await waitFor(() => !runtime.has(id), { what: "the fenced-out session to stop" });
      await t.authStore.delete(d0.sessionId);
      await call("accounts.remove", { workspaceId: ws, accountId: id }).catch(() => undefined);
    });

    it("snapshot shows each account with its current QR while scanning", async () => {
      const { id } = await call("accounts.create", { workspaceId: "ws_snap" });
      await waitFor(() => statusEvent(id, "qr_scanning"));
      const snap = await waitFor(async () => {
        const s = await call("accounts.snapshot", { workspaceId: "ws_snap" });
        return s.items[0]?.qr ? s : null;
      });
      assert.equal(snap.items.length, 1);
      assert.equal(snap.items[0].status, "qr_scanning");
      assert.match(snap.items[0].qr.dataUrl, /^data:image\/png;base64,/);
    });
  });
  describe("with no worker up: accounts on a gateway alone", () => {
    before(async () => {
      const cluster = new TestCluster({ qr: { firstTtlMs: 5000, refreshMs: 1000, max: 6 } }, "sess");
      const events: Recorded[] = [];
      const api = cluster.node("gw", [AccountsService, recorder(events)]);
      await cluster.start();
      await api.waitForServices(["accounts"], 10000);
      const client = await MongoClient.connect(cluster.mongoUrl);
      const db = client.db();
      t = { cluster, events, api, client, db, authStore: new GridFsAuthStore(db, testSecrets()) };
    });
    after(teardown);

    it("a create is recorded unplaced and wanted running; a worker that joins starts it by itself", async () => {
      const created: AccountView = await call("accounts.create", { workspaceId: "w_lone" });
      assert.equal(created.status, "initializing");
      const d = (await doc(t.db, created.id))!;
      assert.deepEqual([d.desiredState, d.node, d.epoch], ["running", null, null]);
      assert.deepEqual(trail(t.events, created.id), ["created"]);

      t.cluster.node("w1", [SessionService]);
      await t.cluster.start();
      // Nobody calls anything: the worker's reconciler places the workspace and starts the account.
      await waitFor(() => statusEvent(created.id, "qr_scanning"), {
        what: "the QR screen on the new worker",
      });
      assert.equal((await doc(t.db, created.id))!.node, "w1");
    });
  });

  describe("on three nodes: accounts on a gateway, session on two workers", () => {
    before(async () => {
      t = await setup({ qr: { firstTtlMs: 5000, refreshMs: 1000, max: 6 } }, "three");
    });
    after(teardown);

    it("every account connects on exactly one worker, its events and doc naming that worker", async () => {
      const workspaces = ["wa", "wb", "wc", "wd", "we", "wf"];
      const accounts = await Promise.all(workspaces.map((w, i) => connected(`1555000100${i}`, w)));

      const [w1, w2]: any[][] = await Promise.all(
        ["w1", "w2"].map((nodeID) => call("session.local", {}, { nodeID })),
      );
      const running = [...w1.map((s) => [s.accountId, "w1"]), ...w2.map((s) => [s.accountId, "w2"])];
      for (const a of accounts) {
        const where = running.filter(([id]) => id === a.id).map(([, node]) => node);
        assert.equal(where.length, 1, `${a.id} runs on ${where.join(",") || "no node"}`);
        const d = (await doc(t.db, a.id))!;
        assert.equal(d.status, "connected");
        assert.equal(d.node, where[0]);
        const nodes = new Set(
          t.events
            .filter((r) => r.event === "account.status" && r.payload.accountId === a.id)
            .map((r) => r.payload.node),
        );
        assert.deepEqual([...nodes], [where[0]], "all status events of an account come from its node");
        assert.deepEqual(
          trail(t.events, a.id).filter((e) => !e.startsWith("qr:")),
          ["created", "status:qr_scanning", "status:authenticated", "status:connected"],
        );
      }

      // Calls reach either worker; the one without the engine forwards to the account's node.
      for (const a of accounts.slice(0, 3)) {
        const mark = t.events.length;
        await call("accounts.restart", { workspaceId: a.workspaceId, accountId: a.id });
        await waitFor(() => t.events.slice(mark).find((r) => isStatus(r, a.id, "connected")), {
          what: "restarted",
        });
        assert.ok(!trail(t.events.slice(mark), a.id).some((e) => e.startsWith("qr:")), "no QR after restart");
        const d = (await doc(t.db, a.id))!;
        const local: any[] = await call("session.local", {}, { nodeID: d.node! });
        assert.ok(local.some((s) => s.accountId === a.id && s.status === "connected"));
      }

      for (const a of accounts)
        await call("accounts.remove", { workspaceId: a.workspaceId, accountId: a.id });
      const after = await Promise.all(["w1", "w2"].map((nodeID) => call("session.local", {}, { nodeID })));
      assert.deepEqual(after, [[], []]);
    });

    it("a start lost under the owner's fence is started by a periodic pass that reads the database", async () => {
      const first: AccountView = await call("accounts.create", { workspaceId: "w_lost" });
      const { node, epoch } = (await doc(t.db, first.id))!;
      // Recorded as the owner would record it, and never told to anyone: no event, no call.
      const lost = newAccountDoc(
        {
          workspaceId: "w_lost",
          accountId: "acc_lost",
          sessionId: "simulated_w_lost_1_lost",
          name: "lost",
          engine: "simulated",
        },
        new Date(),
        { node: node!, epoch: epoch! },
      );
      await t.db.collection<AccountDoc>("accounts").insertOne(lost);
      // Periodic passes read the database every 10th time: within 10 × reconcileMs (500 ms).
      await waitFor(() => statusEvent("acc_lost", "qr_scanning"), {
        what: "the lost start",
        timeoutMs: 15000,
      });
      const local: any[] = await call("session.local", {}, { nodeID: node! });
      assert.ok(
        local.some((s) => s.accountId === "acc_lost"),
        `runs on its owner ${node}`,
      );
    });
  });
  describe("start queue (START_CONCURRENCY=1)", () => {
    let open!: () => void;
    const opened = new Promise<void>((r) => (open = r));
    let inflight = 0;
    let maxInflight = 0;

    before(async () => {
      // The simulated engine behind a gate, counting concurrent starts.
      registerEngine(
        "gated",
        (opts) => {
          const engine: Engine = createSimulatedEngine(opts);
          const start = engine.start.bind(engine);
          engine.start = async () => {
            maxInflight = Math.max(maxInflight, ++inflight);
            try {
              await opened;
              await start();
            } finally {
              inflight--;
            }
          };
          return engine;
        },
        { simulate: true },
      );
      t = await setup({ startConcurrency: 1, qr: { firstTtlMs: 10000 } });
    });
    after(teardown);

    it("queued accounts stay initializing until a start slot frees; starts never overlap", async () => {
      const created: AccountView[] = [];
      for (let i = 0; i < 3; i++)
        created.push(await call("accounts.create", { workspaceId: "wq", engine: "gated" }));
      const local = await waitFor(async () => {
        const l: any[] = await call("session.local", {}, { nodeID: "n1" });
        return l.length === 3 ? l : null;
      });
      assert.deepEqual(
        local.map((s) => s.status),
        ["initializing", "initializing", "initializing"],
      );
      for (const a of created) assert.equal((await doc(t.db, a.id))!.status, "initializing");
      open();
      for (const a of created) await waitFor(() => statusEvent(a.id, "qr_scanning"), { what: `${a.id} QR` });
      assert.equal(maxInflight, 1);
    });
  });
  describe("a start that never returns (START_CONCURRENCY=1, STARTUP_TIMEOUT_MS=300)", () => {
    before(async () => {
      // An engine whose start() hangs, like a browser that never comes up.
      registerEngine(
        "hung",
        (opts) => {
          const engine: Engine = createSimulatedEngine(opts);
          engine.start = () => new Promise<void>(() => undefined);
          return engine;
        },
        { simulate: true },
      );
      // No retry of the failed start within the test (startup_timeout is retryable).
      t = await setup({
        startConcurrency: 1,
        startupTimeoutMs: 300,
        qr: { firstTtlMs: 10000 },
        failedRetryBaseMs: 600000,
      });
    });
    after(teardown);

    it("fails with startup_timeout and frees the start slot for the next account", async () => {
      const hung: AccountView = await call("accounts.create", { workspaceId: "wh", engine: "hung" });
      const next: AccountView = await call("accounts.create", { workspaceId: "wh" });
      const failed = await waitFor(() => statusEvent(hung.id, "failed"), { what: "startup_timeout" });
      assert.equal(failed.payload.reason, "startup_timeout");
      await waitFor(() => statusEvent(next.id, "qr_scanning"), { what: "next account's QR" });
      const local: any[] = await call("session.local", {}, { nodeID: "n1" });
      assert.deepEqual(
        local.map((l) => l.accountId),
        [next.id],
      );
      assert.equal((await doc(t.db, hung.id))!.reason, "startup_timeout");
    });
  });

  describe("failed accounts retried with backoff (FAILED_RETRY_BASE_MS=100)", () => {
    let starts = 0;
    before(async () => {
      // An engine that cannot reach WhatsApp on its first two starts, like a network outage.
      registerEngine(
        "flaky",
        (opts) => {
          const engine: Engine = createSimulatedEngine(opts);
          const start = engine.start.bind(engine);
          engine.start = async () => {
            if (++starts <= 2)
              throw Object.assign(new Error("net::ERR_NAME_NOT_RESOLVED"), {
                data: { reason: "whatsapp_unreachable" },
              });
            await start();
          };
          return engine;
        },
        { simulate: true },
      );
      t = await setup({ failedRetryBaseMs: 100, failedRetryMaxMs: 1000, qr: { firstTtlMs: 10000 } });
    });
    after(teardown);

    it("whatsapp_unreachable: started again after a growing delay until it shows a QR", async () => {
      const a: AccountView = await call("accounts.create", { workspaceId: "wr", engine: "flaky" });
      await waitFor(() => statusEvent(a.id, "qr_scanning"), { what: "a QR after two failed starts" });
      const statuses = trail(t.events, a.id).filter((e) => e.startsWith("status:"));
      assert.deepEqual(statuses, [
        "status:failed",
        "status:initializing",
        "status:failed",
        "status:initializing",
        "status:qr_scanning",
      ]);
      const failedAt = t.events
        .filter((r) => isStatus(r, a.id, "failed") || isStatus(r, a.id, "initializing"))
        .map((r) => Date.parse(r.payload.at));
      // failed → initializing waits base × 2^(n−1) × [0.5, 1]: ≥ 50 ms, then ≥ 100 ms.
      assert.ok(failedAt[1] - failedAt[0] >= 50, `first retry after ${failedAt[1] - failedAt[0]} ms`);
      assert.ok(failedAt[3] - failedAt[2] >= 100, `second retry after ${failedAt[3] - failedAt[2]} ms`);
      assert.equal(starts, 3);
    });
  });
  describe("a restart whose start fails keeps the failed account's retry (FAILED_RETRY_BASE_MS=1000)", () => {
    before(async () => {
      let starts = 0;
      // An engine that cannot reach WhatsApp on its first start only.
      registerEngine(
        "flaky-once",
        (opts) => {
          const engine: Engine = createSimulatedEngine(opts);
          const start = engine.start.bind(engine);
          engine.start = async () => {
            if (++starts === 1)
              throw Object.assign(new Error("net::ERR_NAME_NOT_RESOLVED"), {
                data: { reason: "whatsapp_unreachable" },
              });
            await start();
          };
          return engine;
        },
        { simulate: true },
      );
      t = await setup({ failedRetryBaseMs: 1000, failedRetryMaxMs: 2000, qr: { firstTtlMs: 10000 } });
    });
    after(teardown);

    it("the stop finds nothing running, the start's claim fails: the retry still comes", async () => {
      const a: AccountView = await call("accounts.create", { workspaceId: "wf", engine: "flaky-once" });
      await waitFor(() => statusEvent(a.id, "failed"), { what: "the first start to fail" });
      // The owner's claim fails past the store's retries (the database went away for a moment).
      const repo = (t.api.getLocalService("session") as unknown as { repo: AccountsRepo }).repo;
      const claimOne = repo.claimOne;
      repo.claimOne = async () => {
        repo.claimOne = claimOne;
        throw new Error("database is unavailable");
      };
      try {
        await assert.rejects(call("accounts.restart", { workspaceId: "wf", accountId: a.id }));
      } finally {
        repo.claimOne = claimOne;
      }
      await waitFor(() => statusEvent(a.id, "qr_scanning"), {
        what: "the failed account started again by its retry",
        timeoutMs: 8000,
      });
    });
  });
});
