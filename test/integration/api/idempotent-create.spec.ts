// POST /api/v1/accounts with an Idempotency-Key: one account per key and workspace, however often and
// however concurrently the create is repeated (a client retrying after a timeout). Two real gateways
// and two workers, simulated engine.
import { strict as assert } from "node:assert";
import type { ServiceSchema } from "moleculer";
import { MongoClient } from "mongodb";
import SessionService from "../../../services/session.service.ts";
import { AccountsRepo } from "../../../src/store/accounts-repo.ts";
import { COLLECTIONS } from "../../../src/store/mongo.ts";
import { waitFor } from "../../support/wait.ts";
import { GatewayCluster, LONG_QR, type HttpResult } from "./helpers.ts";

describe("api: idempotent account creates (Idempotency-Key)", function () {
  this.timeout(60000);
  let gc: GatewayCluster;

  before(async () => {
    gc = new GatewayCluster({ ...LONG_QR, rateLimitPerMinute: 100000 });
    await gc.addGateway("gw");
    await gc.addGateway("gw2");
    await gc.addWorker("w1");
    await gc.addWorker("w2");
    await gc.start();
  });
  after(async () => gc?.stop());

  const create = (key: string, body: Record<string, unknown>, idempotencyKey?: string, gateway = 0) =>
    gc.gateways[gateway].call("POST", "/api/v1/accounts", {
      key,
      body,
      headers: idempotencyKey ? { "idempotency-key": idempotencyKey } : {},
    });
  const listIds = async (key: string): Promise<string[]> =>
    (await gc.gw.call("GET", "/api/v1/accounts", { key })).json.items.map((a: { id: string }) => a.id);

  it("a repeat answers the first's account (Idempotent-Replayed); another name is a 422; another workspace, another account", async () => {
    const { key } = await gc.createKey("idem-a");
    const first = await create(key, { name: "Desk" }, "order-1");
    assert.equal(first.status, 201, String(first.body));
    assert.equal(first.headers["idempotent-replayed"], undefined);
    const again = await create(key, { name: "Desk" }, "order-1");
    assert.equal(again.status, 201, String(again.body));
    assert.equal(again.json.id, first.json.id);
    assert.equal(again.json.sessionId, first.json.sessionId);
    assert.equal(again.headers["idempotent-replayed"], "true");
    assert.equal(again.headers.location, `/api/v1/accounts/${first.json.id}`);
    // Without a name the repeat asks for nothing else: the same account.
    assert.equal((await create(key, {}, "order-1")).json.id, first.json.id);

    const other = await create(key, { name: "Front" }, "order-1");
    assert.equal(other.status, 422, String(other.body));
    assert.equal(other.json.type, "IDEMPOTENCY_KEY_REUSED");
    assert.equal(other.json.data.accountId, first.json.id);
    assert.deepEqual(await listIds(key), [first.json.id]);

    const { key: keyB } = await gc.createKey("idem-b");
    const elsewhere = await create(keyB, { name: "Desk" }, "order-1");
    assert.equal(elsewhere.status, 201, String(elsewhere.body));
    assert.notEqual(elsewhere.json.id, first.json.id);
    assert.equal(elsewhere.headers["idempotent-replayed"], undefined);
    // Without a key every create is a new account.
    const plain = await Promise.all([create(key, { name: "Desk" }), create(key, { name: "Desk" })]);
    assert.notEqual(plain[0].json.id, plain[1].json.id);
    assert.equal((await listIds(key)).length, 3);
  });

  it("ten at once with one key, through two gateways: one account, counted once against the quota", async () => {
    const { key } = await gc.createKey("idem-burst");
    const put = await gc.gw.call("PUT", "/api/v1/workspaces/idem-burst/quotas", {
      key: gc.adminKey,
      body: { accounts: 2 },
    });
    assert.equal(put.status, 200, String(put.body));
    const answers: HttpResult[] = await Promise.all(
      Array.from({ length: 10 }, (_, i) => create(key, { name: "Burst" }, "burst-1", i % 2)),
    );
    const created = answers.filter((a) => a.status === 201);
    assert.ok(created.length >= 1, answers.map((a) => `${a.status} ${a.body}`).join("\n"));
    assert.deepEqual(new Set(created.map((a) => a.json.id)).size, 1);
    // A repeat through the other gateway that met the first while it was still being recorded may be
    // told to try again; nothing else.
    for (const a of answers.filter((x) => x.status !== 201)) {
      assert.equal(a.status, 409, String(a.body));
      assert.equal(a.json.type, "INVALID_STATE");
    }
    assert.deepEqual(await listIds(key), [created[0].json.id]);
    // The burst took one of the two accounts the quota allows: one more fits, the next does not.
    assert.equal((await create(key, { name: "Second" })).status, 201);
    const third = await create(key, { name: "Third" });
    assert.equal(third.status, 429, String(third.body));
    assert.equal(third.json.type, "QUOTA_EXCEEDED");
  });

  it("a repeat meets an account being deleted with a 409, a deleted one with a 422: the key makes it once", async () => {
    const { key } = await gc.createKey("idem-del");
    const first = await create(key, { name: "Gone" }, "gone-1");
    assert.equal(first.status, 201, String(first.body));
    const id: string = first.json.id;
    // Its session's status writes done first: FerretDB may lose one of two updates of a document made
    // at once (it rewrites the whole document), and the mark below is one.
    await waitFor(
      async () => (await gc.gw.call("GET", `/api/v1/accounts/${id}`, { key })).json.status === "qr_scanning",
      { what: "the account's QR on screen" },
    );
    // What a delete under way has done first (src: accounts.remove).
    const client = await MongoClient.connect(gc.cluster.mongoUrl);
    try {
      await new AccountsRepo(client.db()).markDeleting("idem-del", id, new Date());
    } finally {
      await client.close();
    }
    const deleting = await create(key, { name: "Gone" }, "gone-1");
    assert.equal(deleting.status, 409, String(deleting.body));
    assert.equal(deleting.json.type, "INVALID_STATE");
    assert.equal((await gc.gw.call("DELETE", `/api/v1/accounts/${id}`, { key })).status, 200);
    for (const gateway of [0, 1]) {
      const after = await create(key, { name: "Gone" }, "gone-1", gateway);
      assert.equal(after.status, 422, String(after.body));
      assert.equal(after.json.type, "IDEMPOTENCY_KEY_REUSED");
      assert.equal(after.json.data.accountId, id);
      assert.match(after.json.message, /was deleted at/);
    }
    assert.deepEqual(await listIds(key), []);
  });
});

describe("api: an idempotent create repeated through another gateway while the first holds the quota's last place", function () {
  this.timeout(60000);
  let gc: GatewayCluster;
  /** How long the worker's `session.create` waits before it records the account. */
  const CREATE_DELAY_MS = 500;
  const slowCreate: ServiceSchema = {
    name: "session",
    mixins: [SessionService as unknown as ServiceSchema],
    hooks: { before: { create: () => new Promise<void>((r) => setTimeout(r, CREATE_DELAY_MS)) } },
  };

  before(async () => {
    gc = new GatewayCluster({ ...LONG_QR, rateLimitPerMinute: 100000 });
    await gc.addGateway("gw");
    await gc.addGateway("gw2");
    gc.workers.push(gc.cluster.node("w1", [slowCreate], { services: ["session"] }));
    await gc.start();
  });
  after(async () => gc?.stop());

  it("the repeat is told to try again (409), never QUOTA_EXCEEDED; tried again, it gets the first's account", async () => {
    const { key } = await gc.createKey("idem-last");
    const put = await gc.gw.call("PUT", "/api/v1/workspaces/idem-last/quotas", {
      key: gc.adminKey,
      body: { accounts: 1 },
    });
    assert.equal(put.status, 200, String(put.body));
    const create = (gateway: number) =>
      gc.gateways[gateway].call("POST", "/api/v1/accounts", {
        key,
        body: { name: "Last" },
        headers: { "idempotency-key": "last-1" },
      });
    const first = create(0);
    // Once the first holds the quota's place (its tally version carries the account's id as `ref`).
    const client = await MongoClient.connect(gc.cluster.mongoUrl);
    try {
      await waitFor(
        async () =>
          (await client
            .db()
            .collection(COLLECTIONS.accountTallies)
            .countDocuments({ ref: { $exists: true } })) > 0,
        { what: "the first create's place in the quota" },
      );
    } finally {
      await client.close();
    }
    const repeat = await create(1);
    const made = await first;
    assert.equal(made.status, 201, String(made.body));
    if (repeat.status === 201) assert.equal(repeat.json.id, made.json.id);
    else {
      assert.equal(repeat.status, 409, String(repeat.body));
      assert.equal(repeat.json.type, "INVALID_STATE");
    }
    // Tried again once the first has answered: its account, replayed.
    const again = await create(1);
    assert.equal(again.status, 201, String(again.body));
    assert.equal(again.json.id, made.json.id);
    assert.equal(again.headers["idempotent-replayed"], "true");
    const list = await gc.gw.call("GET", "/api/v1/accounts", { key });
    assert.deepEqual(
      list.json.items.map((a: { id: string }) => a.id),
      [made.json.id],
    );
  });
});
