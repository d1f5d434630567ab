// The `io` part of the gateway (DESIGN.md, "Interfaces"): Socket.IO on the api service's port, against
// a real cluster (NATS, FerretDB) of two gateways (api + io + accounts) and two session workers with the
// simulated engine. Sockets are socket.io-client; the bus is watched by an observer broker, so "exactly
// the events of its workspace, each once" is checked against what was really broadcast.
import { strict as assert } from "node:assert";
import type { ServiceBroker } from "moleculer";
import AccountsService from "../../../services/accounts.service.ts";
import { createApiService } from "../../../services/api.service.ts";
import IoService from "../../../services/io.service.ts";
import SessionService from "../../../services/session.service.ts";
import { MISSING_TOKEN_MESSAGE, INVALID_TOKEN_MESSAGE } from "../../../src/io/socket-auth.ts";
import type { QuotaBook } from "../../../src/quotas.ts";
import { TestCluster, type ConfigOverrides } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";
import {
  RecordingSocket,
  Rest,
  busKeysOf,
  eventKey,
  gatewayPort,
  observerService,
  type Received,
} from "./support.ts";

const ADMIN = "io-spec-admin-key-of-32-characters";
const SHARED: ConfigOverrides = {
  adminApiKey: ADMIN,
  rateLimitPerMinute: 100000,
  // The machine is shared: generous timeouts, and simulated starts need no Chromium-sized queue.
  requestTimeoutMs: 30000,
  startConcurrency: 8,
  // Long enough for a test to scan before the QR times out; short refreshes give "activity".
  qr: { firstTtlMs: 4000, refreshMs: 1000, max: 20 },
};

describe("io: Socket.IO relay on the gateway", function () {
  this.timeout(60000);
  let cluster: TestCluster;
  const bus: Received[] = [];
  const sockets: RecordingSocket[] = [];
  let gw1: ServiceBroker;
  let gw2: ServiceBroker;
  let rest1: Rest;
  let rest2: Rest;
  let url1: string;
  let url2: string;
  const keys = new Map<string, string>();

  const gateway = (nodeId: string) => {
    const overrides: ConfigOverrides = { services: ["api", "io", "accounts"], port: 0 };
    return cluster.node(
      nodeId,
      [createApiService(cluster.config(nodeId, overrides)), IoService, AccountsService],
      overrides,
    );
  };

  before(async () => {
    cluster = new TestCluster(SHARED, "io");
    gw1 = gateway("gw1");
    gw2 = gateway("gw2");
    cluster.node("w1", [SessionService], { services: ["session"] });
    cluster.node("w2", [SessionService], { services: ["session"] });
    cluster.node("observer", [observerService(bus)], { services: [] });
    await cluster.start();
    await gw1.waitForServices(["session", "accounts", "api"], 15000);
    url1 = `http://127.0.0.1:${gatewayPort(gw1)}`;
    url2 = `http://127.0.0.1:${gatewayPort(gw2)}`;
    rest1 = new Rest(url1);
    rest2 = new Rest(url2);
  });

  after(async () => {
    for (const s of sockets) s.close();
    await cluster.stop();
  });

  async function keyOf(workspaceId: string): Promise<string> {
    if (!keys.has(workspaceId)) {
      const res = await rest1.call("POST", `/api/v1/workspaces/${workspaceId}/keys`, ADMIN, {});
      if (res.status !== 201)
        throw new Error(`key of ${workspaceId}: ${res.status} ${JSON.stringify(res.body)}`);
      keys.set(workspaceId, res.body.key);
    }
    return keys.get(workspaceId)!;
  }

  async function socketOf(workspaceId: string, url = url1): Promise<RecordingSocket> {
    const s = new RecordingSocket(url, { token: await keyOf(workspaceId) }, workspaceId);
    sockets.push(s);
    return s.ready();
  }

  /** Simulates the phone's scan; retried while the session is (re)starting on a loaded machine. */
  async function scan(accountId: string, workspaceId: string, phoneNumber: string): Promise<void> {
    const key = await keyOf(workspaceId);
    await waitFor(
      async () => {
        const res = await rest1.call("POST", `/api/v1/accounts/${accountId}/simulate/scan`, key, {
          phoneNumber,
        });
        if (res.status === 409) return false;
        if (res.status !== 200) throw new Error(`scan → ${res.status} ${JSON.stringify(res.body)}`);
        return true;
      },
      { what: `the scan of ${accountId}`, timeoutMs: 20000, intervalMs: 200 },
    );
  }

  async function createAccount(workspaceId: string, rest = rest1): Promise<{ id: string }> {
    return rest.ok("POST", "/api/v1/accounts", await keyOf(workspaceId), { name: `acc of ${workspaceId}` });
  }

  it("create over REST → QR on the socket → scan → authenticated then connected, in order, each once", async () => {
    const socket = await socketOf("solo");
    assert.deepEqual(socket.snapshot, { items: [] });
    const account = await createAccount("solo");

    const qr = await waitFor(
      () => socket.received.find((r) => r.event === "account.qr" && r.payload.accountId === account.id),
      { what: "the QR on the socket" },
    );
    assert.match(qr.payload.dataUrl, /^data:image\/png;base64,/);
    assert.equal(qr.payload.seq, 1);

    await scan(account.id, "solo", "4915112345678");
    await waitFor(() => socket.statusesOf(account.id).includes("connected"), { what: "connected" });

    const statuses = socket.statusesOf(account.id);
    assert.deepEqual(statuses.slice(statuses.indexOf("authenticated")), ["authenticated", "connected"]);
    assert.equal(statuses.filter((s) => s === "authenticated").length, 1);
    assert.equal(statuses.filter((s) => s === "connected").length, 1);
    assert.equal(statuses[0], "qr_scanning");
    // Every event the socket got is one the bus carried for this workspace, once.
    const got = socket.keys();
    assert.equal(new Set(got).size, got.length, "an event arrived twice");
    await waitFor(
      () => bus.some((r) => r.payload.accountId === account.id && r.payload.status === "connected"),
      {
        what: "connected on the bus (its recorder may hear it after the gateway)",
      },
    );
    const onBus = new Set(busKeysOf(bus, "solo"));
    for (const k of got) assert.ok(onBus.has(k), `socket got ${k}, which the bus never carried`);
  });

  it("socket calls reach accounts.* with the socket's workspace forced, and only whitelisted ones", async () => {
    const mine = await socketOf("callA");
    const account = await createAccount("callA");
    const other = await createAccount("callB");

    const list = await mine.call("accounts.list", { workspaceId: "callB" });
    assert.deepEqual(
      list.items.map((a: { id: string }) => a.id),
      [account.id],
    );
    assert.equal((await mine.call("accounts.get", { accountId: account.id })).workspaceId, "callA");
    // `id`, as sockets sent it before `accountId`, still names the account.
    assert.equal((await mine.call("accounts.get", { id: account.id })).id, account.id);
    await assert.rejects(mine.call("accounts.get", { accountId: other.id, workspaceId: "callB" }), {
      code: 404,
    });
    await assert.rejects(mine.call("session.stop", { workspaceId: "callA", accountId: account.id }), {
      code: 403,
      type: "FORBIDDEN",
    });
    await assert.rejects(mine.call("accounts.pairingCode", { accountId: account.id, phoneNumber: 12 }), {
      code: 422,
    });
    // The acknowledgement is the last argument, wherever the client put it: every call is answered.
    const ack = (...args: unknown[]) =>
      new Promise<unknown[] | "unanswered">((resolve) => {
        const timer = setTimeout(() => resolve("unanswered"), 2000);
        mine.socket.emit("call", ...args, (...res: unknown[]) => {
          clearTimeout(timer);
          resolve(res);
        });
      });
    const noAction = await ack();
    assert.notEqual(noAction, "unanswered", "a call without an action is answered");
    assert.equal((noAction as [{ type?: string }])[0]?.type, "FORBIDDEN", JSON.stringify(noAction));
    const extra = await ack("accounts.get", { accountId: account.id }, "extra");
    assert.notEqual(extra, "unanswered", "a call with an extra argument is answered");
    assert.equal((extra as [null, { id?: string }])[1]?.id, account.id);
  });

  it("a message sent over a socket call: its receipts reach the workspace's socket, sent → delivered → read", async () => {
    const sock = await socketOf("io-acks");
    const { id } = await createAccount("io-acks");
    await waitFor(() => sock.statusesOf(id).includes("qr_scanning"), { what: "qr_scanning on the socket" });
    await scan(id, "io-acks", "4915100000555");
    await waitFor(() => sock.statusesOf(id).includes("connected"), { what: "connected on the socket" });
    const sent = await sock.call("accounts.sendMessage", { accountId: id, to: "4915100000556", text: "hi" });
    assert.equal(sent.status, "sent");
    const acks = () =>
      sock.received
        .filter((r) => r.event === "account.message_ack" && r.payload.messageId === sent.id)
        .map((r) => r.payload.status);
    await waitFor(() => acks().length === 3, { what: "three receipts on the socket" });
    assert.deepEqual(acks(), ["sent", "delivered", "read"]);
    assert.equal(sock.received.find((r) => r.event === "account.message_ack")!.payload.accountId, id);
  });

  it("a socket that connects after the QR was emitted gets it in the snapshot", async () => {
    const account = await createAccount("late");
    await waitFor(() => bus.find((r) => r.event === "account.qr" && r.payload.accountId === account.id), {
      what: "the QR on the bus",
    });
    const late = await socketOf("late", url2);
    const item = late.snapshot!.items.find((a) => a.id === account.id);
    assert.ok(item, "the account is in the snapshot");
    assert.equal(item.status, "qr_scanning");
    assert.ok(item.qr?.qr && item.qr.dataUrl.startsWith("data:image/png"), "the snapshot carries the QR");
  });

  it("refuses a missing or wrong key at connect with a clear error", async () => {
    const none = new RecordingSocket(url1, undefined);
    const wrong = new RecordingSocket(url1, { token: "sbk_0123456789abcdef_" + "0".repeat(64) });
    const admin = new RecordingSocket(url1, { token: ADMIN });
    sockets.push(none, wrong, admin);
    const [e1, e2, e3] = await Promise.all([none.refused(), wrong.refused(), admin.refused()]);
    assert.equal(e1.message, MISSING_TOKEN_MESSAGE);
    assert.equal(e1.data.type, "UNAUTHORIZED");
    assert.equal(e2.message, INVALID_TOKEN_MESSAGE);
    assert.equal(e2.data.code, 401);
    assert.match(e3.message, /admin key must name a workspace/);
    // The admin key naming a workspace is let in, to that workspace.
    const adminIn = new RecordingSocket(url1, { token: ADMIN, workspaceId: "solo" }, "solo");
    sockets.push(adminIn);
    await adminIn.ready();
    assert.ok(adminIn.snapshot!.items.length >= 1);
  });

  it("a revoked key loses its open sockets on every gateway", async () => {
    const { key, keyId } = await rest1.ok("POST", "/api/v1/workspaces/revoked/keys", ADMIN, {});
    const s = new RecordingSocket(url2, { token: key }, "revoked");
    sockets.push(s);
    await s.ready();
    const revoked = new Promise((resolve) => s.socket.once("auth.revoked", resolve));
    const gone = new Promise((resolve) => s.socket.once("disconnect", resolve));
    await rest1.call("DELETE", `/api/v1/workspaces/revoked/keys/${keyId}`, ADMIN);
    assert.deepEqual(await revoked, { keyId, message: "This API key was revoked" });
    assert.equal(await gone, "io server disconnect");
    const again = new RecordingSocket(url2, { token: key });
    sockets.push(again);
    assert.equal((await again.refused()).message, INVALID_TOKEN_MESSAGE);
  });

  it("a key revoked while a socket's handshake was under way: the socket is dropped as it connects", async () => {
    const { key, keyId } = await rest1.ok("POST", "/api/v1/workspaces/revoking/keys", ADMIN, {});
    const first = new RecordingSocket(url2, { token: key }, "revoking");
    sockets.push(first);
    await first.ready();
    // The next handshake of this workspace on gw2 waits at its socket quota, its key already checked.
    const quotas = (gw2.getLocalService("api") as unknown as { quotas: QuotaBook }).quotas;
    const quotasOf = quotas.of.bind(quotas);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let waiting = false;
    quotas.of = async (ws) => {
      if (ws === "revoking") {
        waiting = true;
        await gate;
      }
      return quotasOf(ws);
    };
    try {
      const second = new RecordingSocket(url2, { token: key }, "revoking");
      sockets.push(second);
      const dropped = new Promise((resolve) => second.socket.once("disconnect", resolve));
      await waitFor(() => waiting, { what: "the second handshake at its quota" });
      const revoked = new Promise((resolve) => first.socket.once("auth.revoked", resolve));
      await rest1.call("DELETE", `/api/v1/workspaces/revoking/keys/${keyId}`, ADMIN);
      await revoked; // gw2 heard of the revocation
      release();
      assert.equal(await dropped, "io server disconnect");
      assert.equal(second.snapshot, null, "no snapshot, no events");
    } finally {
      release();
      quotas.of = quotasOf;
    }
  });

  it("socket errors keep the REST contract: no worker running is 503 SERVICE_UNAVAILABLE", async () => {
    // A gateway of its own with no worker: an account recorded unplaced, then restarted over a socket.
    const solo = new TestCluster(SHARED, "iosolo");
    const overrides: ConfigOverrides = { services: ["api", "io", "accounts"], port: 0 };
    const gw = solo.node(
      "gw",
      [createApiService(solo.config("gw", overrides)), IoService, AccountsService],
      overrides,
    );
    try {
      await solo.start();
      const url = `http://127.0.0.1:${gatewayPort(gw)}`;
      const { key } = await new Rest(url).ok("POST", "/api/v1/workspaces/alone/keys", ADMIN, {});
      const s = new RecordingSocket(url, { token: key }, "alone");
      sockets.push(s);
      await s.ready();
      const { id } = await s.call("accounts.create", { name: "no worker" });
      const err: any = await s.call("accounts.restart", { accountId: id }).then(
        () => assert.fail("restarted with no worker"),
        (e: unknown) => e,
      );
      assert.deepEqual([err.code, err.type], [503, "SERVICE_UNAVAILABLE"], JSON.stringify(err));
    } finally {
      await solo.stop();
    }
  });

  it("50 workspaces, a socket each on either gateway, activity everywhere: no socket gets another workspace's event", async function () {
    this.timeout(120000);
    const wsIds = Array.from({ length: 50 }, (_, i) => `many${i}`);
    const socks = await Promise.all(wsIds.map((ws, i) => socketOf(ws, i % 2 ? url2 : url1)));
    const accounts: { id: string }[] = [];
    for (let i = 0; i < wsIds.length; i += 10) {
      const batch = wsIds.slice(i, i + 10);
      accounts.push(
        ...(await Promise.all(batch.map((ws, j) => createAccount(ws, (i + j) % 2 ? rest2 : rest1)))),
      );
    }
    await waitFor(
      () => accounts.every((a) => bus.some((r) => r.event === "account.qr" && r.payload.accountId === a.id)),
      { what: "a QR for every account", timeoutMs: 30000 },
    );
    await Promise.all(
      accounts.map(async (a, i) => scan(a.id, wsIds[i], `49151000${String(i).padStart(4, "0")}`)),
    );
    await waitFor(() => socks.every((s, i) => s.statusesOf(accounts[i].id).includes("connected")), {
      what: "every account connected",
      timeoutMs: 30000,
    });
    await Promise.all(
      accounts.map(async (a, i) =>
        rest2.ok("POST", `/api/v1/accounts/${a.id}/simulate/message`, await keyOf(wsIds[i]), {
          from: "4917000000001",
          text: `hi ${i}`,
        }),
      ),
    );
    await waitFor(() => socks.every((s) => s.received.some((r) => r.event === "account.message")), {
      what: "a message on every socket",
    });
    await waitFor(
      () =>
        accounts.every((a) => bus.some((r) => r.event === "account.message" && r.payload.accountId === a.id)),
      { what: "every message on the bus (its recorder may hear it after the gateways)" },
    );
    // Settle: every socket has everything the bus carried for its workspace.
    await waitFor(() => socks.every((s) => s.received.length >= busKeysOf(bus, s.workspaceId!).length), {
      what: "sockets to catch up with the bus",
    });

    let total = 0;
    for (const s of socks) {
      const foreign = s.received.filter(
        (r) => (r.payload.workspaceId ?? r.payload.account?.workspaceId) !== s.workspaceId,
      );
      assert.deepEqual(foreign, [], `socket of ${s.workspaceId} got events of other workspaces`);
      assert.deepEqual(s.keys().sort(), busKeysOf(bus, s.workspaceId!).sort(), `events of ${s.workspaceId}`);
      total += s.received.length;
    }
    const onBusForThem = wsIds.reduce((n, ws) => n + busKeysOf(bus, ws).length, 0);
    assert.equal(total, onBusForThem);
    assert.ok(total >= 50 * 5, `expected activity, got ${total} events`);
  });

  it("two gateways with sockets on both: each socket gets each of its events exactly once", async () => {
    const wsIds = ["twoA", "twoB"];
    const socks: RecordingSocket[] = [];
    for (const ws of wsIds)
      socks.push(await socketOf(ws, url1), await socketOf(ws, url2), await socketOf(ws, url2));
    const accounts = await Promise.all(wsIds.map((ws, i) => createAccount(ws, i ? rest2 : rest1)));
    await waitFor(
      () => accounts.every((a) => bus.some((r) => r.event === "account.qr" && r.payload.accountId === a.id)),
      { what: "the QRs" },
    );
    for (const [i, a] of accounts.entries()) {
      await scan(a.id, wsIds[i], `4915200000${i}`);
    }
    await waitFor(() => socks.every((s) => s.received.some((r) => r.payload.status === "connected")), {
      what: "connected on every socket",
    });
    // The bus recorder is a listener like the gateways: under load it may hear the last event later.
    await waitFor(
      () =>
        accounts.every((a) =>
          bus.some((r) => r.payload.accountId === a.id && r.payload.status === "connected"),
        ),
      { what: "connected on the bus" },
    );
    await waitFor(() => socks.every((s) => s.received.length >= busKeysOf(bus, s.workspaceId!).length), {
      what: "sockets to catch up with the bus",
    });
    for (const s of socks) {
      const got = s.keys();
      assert.equal(new Set(got).size, got.length, `a socket of ${s.workspaceId} got an event twice`);
      assert.deepEqual([...got].sort(), busKeysOf(bus, s.workspaceId!).sort());
      // In order per account: the status trail is the bus's trail.
      for (const a of accounts) {
        const busTrail = bus
          .filter((r) => r.event === "account.status" && r.payload.accountId === a.id)
          .map((r) => eventKey(r.event, r.payload));
        const sockTrail = s.received
          .filter((r) => r.event === "account.status" && r.payload.accountId === a.id)
          .map((r) => eventKey(r.event, r.payload));
        if (sockTrail.length) assert.deepEqual(sockTrail, busTrail);
      }
    }
  });
});
