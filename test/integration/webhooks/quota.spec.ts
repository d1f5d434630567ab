// The webhook endpoints quota through the real gateway and two webhooks nodes (so creates race across
// nodes, as through several gateways): creates racing at the quota stop exactly at it, the others
// answered 429 QUOTA_EXCEEDED; a delete makes room at once; a create or delete cut short by a crash
// leaves the workspace short of room only until it is counted at its quota. Then the repository on its
// own: a create whose endpoint was not stored is counted out again, and endpoints stored before the
// tallies are counted once.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import type { ServiceSchema } from "moleculer";
import { MongoClient, type Db } from "mongodb";
import WebhooksSchema from "../../../services/webhooks.service.ts";
import { CREATE_SETTLES_MS } from "../../../src/quotas.ts";
import { tallyId } from "../../../src/store/tally-repo.ts";
import {
  ENDPOINTS_COLLECTION,
  ENDPOINT_TALLIES_COLLECTION,
  EndpointsRepo,
} from "../../../src/store/webhook-endpoints-repo.ts";
import { GatewayCluster, type HttpResult } from "../api/helpers.ts";
import { mongoUrlFor } from "../../support/env.ts";
import { waitFor } from "../../support/wait.ts";

interface TallyVersion {
  _id: string;
  workspaceId: string;
  seq: number;
  n: number;
  d: number;
  at: Date;
}

/** The last version of a workspace's endpoint tally, checked to have no gaps or doubles. */
async function lastVersion(db: Db, ws: string): Promise<TallyVersion> {
  const docs = await db
    .collection<TallyVersion>(ENDPOINT_TALLIES_COLLECTION)
    .find({ workspaceId: ws })
    .sort({ seq: 1 })
    .toArray();
  assert.deepEqual(
    docs.map((d) => d.seq),
    docs.map((_, i) => i + 1),
    "versions without gaps or doubles",
  );
  return docs.at(-1)!;
}

const WebhooksService = WebhooksSchema as unknown as ServiceSchema;

describe("webhooks: the endpoints quota under concurrent creates", function () {
  this.timeout(60000);
  let gc: GatewayCluster;
  let client: MongoClient;
  let db: Db;

  before(async () => {
    gc = new GatewayCluster();
    await gc.addGateway("gw");
    gc.cluster.node("wh1", [WebhooksService], { services: ["webhooks"] });
    gc.cluster.node("wh2", [WebhooksService], { services: ["webhooks"] });
    await gc.start();
    await waitFor(
      () =>
        gc.gw.broker.registry
          .getServiceList({ onlyAvailable: true })
          .filter((s: { name: string }) => s.name === "webhooks").length === 2,
      { what: "both webhooks nodes to be visible to the gateway" },
    );
    client = await MongoClient.connect(gc.cluster.mongoUrl);
    db = client.db();
  });
  after(async () => {
    await client?.close();
    await gc?.stop();
  });

  /** A workspace key, with the workspace's webhooks quota set to `quota` by the admin. */
  async function workspace(ws: string, quota: number): Promise<string> {
    const { key } = await gc.createKey(ws);
    const set = await gc.gw.call("PUT", `/api/v1/workspaces/${ws}/quotas`, {
      key: gc.adminKey,
      body: { webhooks: quota },
    });
    assert.equal(set.status, 200, String(set.body));
    return key;
  }

  const create = (key: string, i: number | string): Promise<HttpResult> =>
    gc.gw.call("POST", "/api/v1/webhooks", { key, body: { url: `http://127.0.0.1:9/hook-${i}` } });

  async function storedIds(key: string): Promise<string[]> {
    const list = await gc.gw.call("GET", "/api/v1/webhooks", { key });
    assert.equal(list.status, 200, String(list.body));
    return list.json.items.map((e: { id: string }) => e.id).sort();
  }

  function assertRefusedAtQuota(res: HttpResult, ws: string, limit: number): void {
    assert.equal(res.status, 429, String(res.body));
    assert.equal(res.json.type, "QUOTA_EXCEEDED");
    assert.deepEqual(res.json.data, { workspaceId: ws, quota: "webhooks", limit });
  }

  it("10 creates at once with room for 3: exactly 3 are created (201), 7 refused 429 QUOTA_EXCEEDED", async () => {
    // Several rounds, each a workspace of its own: one interleaving may happen to come out right.
    const rounds = Array.from({ length: 8 }, (_, round) => `wq_race_${round}`);
    for (const [round, ws] of rounds.entries()) {
      const key = await workspace(ws, 5);
      const before = [await create(key, "a"), await create(key, "b")];
      assert.deepEqual(
        before.map((r) => r.status),
        [201, 201],
      );

      const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => create(key, i)));
      const created = answers.filter((r) => r.status === 201);
      for (const r of answers.filter((a) => a.status !== 201)) assertRefusedAtQuota(r, ws, 5);
      assert.equal(created.length, 3, `round ${round}: statuses ${answers.map((r) => r.status).join(",")}`);
      assert.deepEqual(
        await storedIds(key),
        [...before, ...created].map((r) => r.json.id).sort(),
        "exactly the endpoints answered 201 are stored: the quota's 5",
      );
    }
    for (const ws of rounds) assert.equal((await lastVersion(db, ws)).n, 5, `${ws}: the tally counts 5`);
  });

  it("a delete makes room at once for one create, and the quota still holds after it", async () => {
    const ws = "wq_delete";
    const key = await workspace(ws, 3);
    const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => create(key, i)));
    assert.deepEqual(answers.map((r) => r.status).sort(), [201, 201, 201, 429, 429, 429]);
    const gone = answers.find((r) => r.status === 201)!.json.id;
    // Deleted twice at once (a client's retry): counted out once.
    const deletes = await Promise.all(
      [0, 1].map(() => gc.gw.call("DELETE", `/api/v1/webhooks/${gone}`, { key })),
    );
    assert.ok(deletes.some((r) => r.status === 200) && deletes.every((r) => [200, 404].includes(r.status)));
    assert.equal((await lastVersion(db, ws)).n, 2);

    const again = await Promise.all(Array.from({ length: 4 }, (_, i) => create(key, `again-${i}`)));
    assert.deepEqual(again.map((r) => r.status).sort(), [201, 429, 429, 429]);
    for (const r of again.filter((a) => a.status !== 201)) assertRefusedAtQuota(r, ws, 3);
    const ids = await storedIds(key);
    assert.equal(ids.length, 3);
    assert.ok(!ids.includes(gone));
    assert.equal((await lastVersion(db, ws)).n, 3);
  });

  it("a create or a delete cut short by a crash leaves the workspace short of room only until its creates settle", async () => {
    const ws = "wq_crash";
    const key = await workspace(ws, 3);
    const made = [await create(key, "a"), await create(key, "b")];
    assert.deepEqual(
      made.map((r) => r.status),
      [201, 201],
    );
    // A create that counted itself and died before its insert: a version, no endpoint.
    const last = await lastVersion(db, ws);
    await db.collection<TallyVersion>(ENDPOINT_TALLIES_COLLECTION).insertOne({
      _id: tallyId(ws, last.seq + 1),
      workspaceId: ws,
      seq: last.seq + 1,
      n: last.n + 1,
      d: 1,
      at: new Date(),
    });
    // A delete that died between deleting the endpoint and counting it out.
    await db.collection(ENDPOINTS_COLLECTION).deleteOne({ _id: made[0].json.id as never });
    assert.equal((await storedIds(key)).length, 1);

    // The tally says 3: the creates of the last minute may still be on their way, so none is admitted.
    assertRefusedAtQuota(await create(key, "c"), ws, 3);
    // Once they are settled (as if a minute had passed), the endpoints are counted at the quota: room
    // for exactly the two that are missing.
    await db
      .collection<TallyVersion>(ENDPOINT_TALLIES_COLLECTION)
      .updateMany({ workspaceId: ws }, { $set: { at: new Date(Date.now() - CREATE_SETTLES_MS - 1000) } });
    // A node that counted the workspace full a moment ago counts it again after its cache (5 s).
    const first = await waitFor(
      async () => {
        const res = await create(key, "after-crash");
        return res.status === 201 ? res : null;
      },
      { what: "a create admitted once the endpoints are counted", timeoutMs: 15000, intervalMs: 250 },
    );
    const answers = await Promise.all(Array.from({ length: 4 }, (_, i) => create(key, `d${i}`)));
    assert.deepEqual(answers.map((r) => r.status).sort(), [201, 429, 429, 429]);
    for (const r of answers.filter((a) => a.status !== 201)) assertRefusedAtQuota(r, ws, 3);
    assert.deepEqual(
      await storedIds(key),
      [made[1], first, ...answers.filter((a) => a.status === 201)].map((r) => r.json.id).sort(),
    );
  });
});

describe("store: webhook endpoints counted for their quota", () => {
  let client: MongoClient;
  let db: Db;

  before(async () => {
    client = await MongoClient.connect(mongoUrlFor(`whquota${randomBytes(3).toString("hex")}`));
    db = client.db();
    await new EndpointsRepo(db).ensureIndexes();
  });
  after(async () => {
    await db?.dropDatabase();
    await client?.close();
  });

  const input = (workspaceId: string, url = "https://example.org/hook") => ({
    workspaceId,
    url,
    secret: "whsec_quota_spec_0123",
  });

  it("a create whose endpoint was not stored is counted out again: nothing half-written", async () => {
    const repo = new EndpointsRepo(db);
    // A document too large to be sent (past the driver's 17 MiB buffer): the insert fails after the count.
    await assert.rejects(
      repo.create(input("ws_refused", `https://example.org/${"x".repeat(17 * 1024 * 1024)}`), 1),
      (err: { type?: string }) => err.type !== "QUOTA_EXCEEDED",
    );
    assert.equal(await repo.count("ws_refused"), 0);
    assert.equal((await lastVersion(db, "ws_refused")).n, 0);
    await repo.create(input("ws_refused"), 1);
    await assert.rejects(repo.create(input("ws_refused"), 1), {
      type: "QUOTA_EXCEEDED",
      data: { workspaceId: "ws_refused", quota: "webhooks", limit: 1 },
    });
  });

  it("endpoints stored before tallies are counted once, when a webhooks node starts", async () => {
    const now = new Date();
    await db.collection(ENDPOINTS_COLLECTION).insertMany(
      ["old", "old", "old", "older"].map((workspaceId, i) => ({
        _id: `wh_legacy${i}` as never,
        workspaceId,
        url: "https://example.org/legacy",
        secret: "whsec_legacy_0123456",
        events: ["*"],
        enabled: true,
        createdAt: now,
        updatedAt: now,
      })),
    );
    const repo = new EndpointsRepo(db);
    await Promise.all([repo.tallies.seedOnce(), new EndpointsRepo(db).tallies.seedOnce()]);
    assert.equal((await lastVersion(db, "old")).n, 3);
    assert.equal((await lastVersion(db, "older")).n, 1);

    await repo.create(input("old"), 4);
    await assert.rejects(repo.create(input("old"), 4), { type: "QUOTA_EXCEEDED" });
    // Once per database: later endpoints are counted as they are made, not again at start.
    await new EndpointsRepo(db).tallies.seedOnce();
    assert.equal((await lastVersion(db, "old")).seq, 2);
  });
});
