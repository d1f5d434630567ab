// Per-workspace quotas: accounts, webhook endpoints, open sockets and socket calls per minute stop at
// their QUOTA_* default with 429 QUOTA_EXCEEDED, other workspaces are not affected, and the admin can
// raise a workspace's quota.
import { strict as assert } from "node:assert";
import type { ServiceBroker, ServiceSchema } from "moleculer";
import AccountsService from "../../../services/accounts.service.ts";
import { createApiService } from "../../../services/api.service.ts";
import IoService from "../../../services/io.service.ts";
import SessionService from "../../../services/session.service.ts";
import WebhooksService from "../../../services/webhooks.service.ts";
import { TestCluster, type ConfigOverrides } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";
import { RecordingSocket, Rest, gatewayPort } from "../io/support.ts";

const ADMIN = "quotas-spec-admin-key-of-32-chars!";
const QUOTAS = { accounts: 2, webhooks: 1, sockets: 1, socketCallsPerMinute: 3 };

describe("security: per-workspace quotas", function () {
  this.timeout(60000);
  let cluster: TestCluster;
  let gw: ServiceBroker;
  let rest: Rest;
  let url: string;
  const sockets: RecordingSocket[] = [];

  before(async () => {
    cluster = new TestCluster({ adminApiKey: ADMIN, quotas: QUOTAS }, "quotas");
    const overrides: ConfigOverrides = { services: ["api", "io", "accounts", "webhooks"], port: 0 };
    gw = cluster.node(
      "gw",
      [
        createApiService(cluster.config("gw", overrides)),
        IoService,
        AccountsService,
        WebhooksService as unknown as ServiceSchema,
      ],
      overrides,
    );
    cluster.node("w1", [SessionService], { services: ["session"] });
    await cluster.start();
    await gw.waitForServices(["session", "accounts", "api", "webhooks"], 15000);
    url = `http://127.0.0.1:${gatewayPort(gw)}`;
    rest = new Rest(url);
  });

  afterEach(() => {
    for (const s of sockets.splice(0)) s.close();
  });

  after(async () => cluster?.stop());

  const keyOf = async (ws: string): Promise<string> =>
    (await rest.ok("POST", `/api/v1/workspaces/${ws}/keys`, ADMIN, {})).key;

  it("accounts stop at the quota with 429 QUOTA_EXCEEDED; the admin can raise it for one workspace", async () => {
    const key = await keyOf("q_acc");
    for (let i = 0; i < QUOTAS.accounts; i++) await rest.ok("POST", "/api/v1/accounts", key, {});
    const over = await rest.call("POST", "/api/v1/accounts", key, {});
    assert.equal(over.status, 429);
    assert.equal(over.body.type, "QUOTA_EXCEEDED");
    assert.deepEqual(over.body.data, { workspaceId: "q_acc", quota: "accounts", limit: QUOTAS.accounts });
    assert.equal(
      (await rest.ok("GET", "/api/v1/accounts", key)).items.length,
      QUOTAS.accounts,
      "none half-made",
    );
    // Another workspace has its own count.
    await rest.ok("POST", "/api/v1/accounts", await keyOf("q_other"), {});

    const raised = await rest.ok("PUT", "/api/v1/workspaces/q_acc/quotas", ADMIN, { accounts: 3 });
    assert.deepEqual(raised, { workspaceId: "q_acc", ...QUOTAS, accounts: 3 });
    assert.deepEqual(await rest.ok("GET", "/api/v1/workspaces/q_acc/quotas", ADMIN), raised);
    // The accounts service reads quotas through a cache of a few seconds.
    await waitFor(async () => (await rest.call("POST", "/api/v1/accounts", key, {})).status === 201, {
      what: "the raised quota to admit a third account",
      intervalMs: 500,
    });
    assert.equal(
      (await rest.call("PUT", "/api/v1/workspaces/q_acc/quotas", key, { accounts: 9 })).status,
      403,
    );
    assert.equal(
      (await rest.call("PUT", "/api/v1/workspaces/q_acc/quotas", ADMIN, { accounts: -1 })).status,
      422,
    );
  });

  it("a deleted account makes room at once; creates racing at the quota never pass it", async () => {
    const key = await keyOf("q_del");
    const created = await Promise.all(
      Array.from({ length: 6 }, () => rest.call("POST", "/api/v1/accounts", key, {})),
    );
    assert.deepEqual(created.map((r) => r.status).sort(), [201, 201, 429, 429, 429, 429]);
    const first = created.find((r) => r.status === 201)!.body;
    await rest.ok("DELETE", `/api/v1/accounts/${first.id}`, key);
    assert.equal((await rest.call("POST", "/api/v1/accounts", key, {})).status, 201);
    assert.equal((await rest.call("POST", "/api/v1/accounts", key, {})).status, 429);
    assert.equal((await rest.ok("GET", "/api/v1/accounts", key)).items.length, QUOTAS.accounts);
  });

  it("webhook endpoints stop at the quota", async () => {
    const key = await keyOf("q_hooks");
    await rest.ok("POST", "/api/v1/webhooks", key, { url: "http://127.0.0.1:9/a" });
    const over = await rest.call("POST", "/api/v1/webhooks", key, { url: "http://127.0.0.1:9/b" });
    assert.equal(over.status, 429);
    assert.equal(over.body.data.quota, "webhooks");
  });

  it("webhook endpoints created at once never end over the quota", async () => {
    const key = await keyOf("q_hooks_race");
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        rest.call("POST", "/api/v1/webhooks", key, { url: `http://127.0.0.1:9/r${i}` }),
      ),
    );
    const created = answers.filter((a) => a.status === 201);
    for (const a of answers.filter((x) => x.status !== 201)) {
      assert.equal(a.status, 429);
      assert.equal(a.body.data.quota, "webhooks");
    }
    const listed = await rest.ok("GET", "/api/v1/webhooks", key);
    assert.ok(listed.items.length <= QUOTAS.webhooks, `${listed.items.length} endpoints`);
    assert.deepEqual(
      listed.items.map((e: { id: string }) => e.id).sort(),
      created.map((a) => a.body.id).sort(),
    );
  });

  it("open sockets and socket calls per minute stop at their quotas", async () => {
    const key = await keyOf("q_sock");
    const first = new RecordingSocket(url, { token: key }, "q_sock");
    sockets.push(first);
    await first.ready();
    const second = new RecordingSocket(url, { token: key }, "q_sock");
    sockets.push(second);
    const refusal = await second.refused();
    assert.equal(refusal.data.type, "QUOTA_EXCEEDED");
    assert.equal(refusal.data.quota, "sockets");

    for (let i = 0; i < QUOTAS.socketCallsPerMinute; i++) await first.call("accounts.list");
    await assert.rejects(
      first.call("accounts.list"),
      (err: { code: number; type: string; data: { quota: string } }) => {
        assert.equal(err.code, 429);
        assert.equal(err.type, "QUOTA_EXCEEDED");
        assert.equal(err.data.quota, "socketCallsPerMinute");
        return true;
      },
    );
    // A replay of the log is a call too (each reads the log and queues it on the socket).
    const resumed: any = await new Promise((resolve) =>
      first.socket.emit("resume", "0", (err: unknown, res: unknown) => resolve(err ?? res)),
    );
    assert.equal(resumed.type, "QUOTA_EXCEEDED");
    assert.equal(resumed.data.quota, "socketCallsPerMinute");
  });

  it("a changed socket-call quota keeps the calls already spent in the minute", async () => {
    const key = await keyOf("q_calls");
    const socket = new RecordingSocket(url, { token: key }, "q_calls");
    sockets.push(socket);
    await socket.ready();
    for (let i = 0; i < QUOTAS.socketCallsPerMinute; i++) await socket.call("accounts.list");
    const raised = QUOTAS.socketCallsPerMinute + 2;
    await rest.ok("PUT", "/api/v1/workspaces/q_calls/quotas", ADMIN, { socketCallsPerMinute: raised });
    // The raised quota refills one call every 60/5 s: none back yet, the minute's calls still count.
    await assert.rejects(socket.call("accounts.list"), (err: { code: number; data: { limit: number } }) => {
      assert.equal(err.code, 429);
      assert.equal(err.data.limit, raised, "refused under the new quota");
      return true;
    });
  });

  it("sockets opened at once stop at the quota too: the handshakes under way count", async () => {
    await rest.ok("PUT", "/api/v1/workspaces/q_burst/quotas", ADMIN, { sockets: 2 });
    const key = await keyOf("q_burst");
    // Every handshake reaches its quota check before any of them goes on (as when the workspace's
    // quotas are read from the database for all of them at once).
    const quotas = (gw.getLocalService("api") as unknown as { quotas: { of(ws: string): Promise<unknown> } })
      .quotas;
    const realOf = quotas.of.bind(quotas);
    let waiting = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    quotas.of = async (ws: string) => {
      if (ws !== "q_burst") return realOf(ws);
      waiting++;
      await gate;
      return realOf(ws);
    };
    const burst = Array.from({ length: 12 }, () => new RecordingSocket(url, { token: key }, "q_burst"));
    sockets.push(...burst);
    const settled = burst.map((s) =>
      s.refused().then(
        (err) => `refused ${err.data?.type}`,
        () => "accepted",
      ),
    );
    try {
      await waitFor(() => waiting === 12, { what: "the 12 handshakes at their quota check" });
    } finally {
      release();
      quotas.of = realOf;
    }
    const outcomes = await Promise.all(settled);
    assert.equal(outcomes.filter((o) => o === "accepted").length, 2, outcomes.join(", "));
    assert.equal(outcomes.filter((o) => o === "refused QUOTA_EXCEEDED").length, 10, outcomes.join(", "));
  });

  it("a replay at connect (auth.after) is a socket call: past the allowance it is refused as a resume is", async () => {
    await rest.ok("PUT", "/api/v1/workspaces/q_replay/quotas", ADMIN, { sockets: 10 });
    const key = await keyOf("q_replay");
    // One logged event to replay (account.created), so an accepted replay can be seen.
    await rest.ok("POST", "/api/v1/accounts", key, {});
    const first = await waitFor(
      async () =>
        (await rest.ok("GET", "/api/v1/events?after=0", key)).items[0]?.cursor as string | undefined,
      { what: "the account's first event in the log" },
    );
    const connect = () => {
      const s = new RecordingSocket(url, { token: key, after: "0" }, "q_replay");
      const resumeErrors: any[] = [];
      s.socket.on("events.resume_error", (err: unknown) => resumeErrors.push(err));
      sockets.push(s);
      return { s, resumeErrors };
    };
    const replayed = (s: RecordingSocket) => s.received.some((r) => r.payload.cursor === first);

    for (let i = 0; i < QUOTAS.socketCallsPerMinute; i++) {
      const { s, resumeErrors } = connect();
      await waitFor(() => replayed(s), { what: `connect ${i + 1} to replay the log` });
      assert.deepEqual(resumeErrors, []);
    }
    const over = connect();
    const refused = await waitFor(() => over.resumeErrors[0], {
      what: "the replay past the allowance refused",
    });
    assert.equal(refused.code, 429);
    assert.equal(refused.type, "QUOTA_EXCEEDED");
    assert.deepEqual(refused.data, {
      workspaceId: "q_replay",
      quota: "socketCallsPerMinute",
      limit: QUOTAS.socketCallsPerMinute,
    });
    // The socket itself is let in (snapshot, then live events), without the log.
    await over.s.ready();
    assert.ok(!replayed(over.s), "nothing replayed");
    // A resume now is refused with the same error.
    const resumed: any = await new Promise((resolve) =>
      over.s.socket.emit("resume", "0", (err: unknown, res: unknown) => resolve(err ?? res)),
    );
    assert.deepEqual(resumed, refused);
  });
});
