// GET /metrics behind METRICS_TOKEN, and the accounts aggregate it reports computed at most every
// ACCOUNTS_AGGREGATE_TTL_MS, not on every scrape.
import { strict as assert } from "node:assert";
import { MongoClient } from "mongodb";
import { newAccountDoc } from "../../../src/accounts/types.ts";
import { ACCOUNTS_AGGREGATE_TTL_MS } from "../../../src/gateway/metrics.ts";
import { COLLECTIONS } from "../../../src/store/mongo.ts";
import { waitFor } from "../../support/wait.ts";
import { GatewayCluster } from "../api/helpers.ts";

describe("security: /metrics", function () {
  this.timeout(30000);
  const token = "metrics-token-of-a-good-length-0123456789";
  let gc: GatewayCluster;
  let client: MongoClient;
  before(async () => {
    gc = new GatewayCluster({ metricsToken: token });
    await gc.addGateway("gw"); // no worker: the gateway computes the sessions family itself
    await gc.start();
    client = await MongoClient.connect(gc.cluster.mongoUrl);
  });
  after(async () => {
    await client?.close();
    await gc?.stop();
  });

  it("needs the token: none or a wrong one is a 401 in the contract's shape", async () => {
    const attempts: Record<string, string>[] = [
      {},
      { authorization: "Bearer nope" },
      { authorization: `Bearer ${token}x` },
    ];
    for (const headers of attempts) {
      const res = await gc.gw.call("GET", "/metrics", { headers });
      assert.equal(res.status, 401);
      assert.equal(res.json.type, "UNAUTHORIZED");
    }
    const ok = await gc.gw.call("GET", "/metrics", { headers: { authorization: `Bearer ${token}` } });
    assert.equal(ok.status, 200);
  });

  it("the accounts aggregate is reused for a few seconds, then computed again", async () => {
    const scrape = async () =>
      (
        await gc.gw.call("GET", "/metrics", { headers: { authorization: `Bearer ${token}` } })
      ).body.toString();
    const count = (text: string) =>
      Number(/^switchboard_sessions\{node="none",status="initializing"\} (\d+)$/m.exec(text)?.[1] ?? 0);
    const accounts = client.db().collection(COLLECTIONS.accounts);
    let n = 0;
    const add = () => {
      const id = `acc_metrics_${++n}`;
      const a = { workspaceId: "ws_m", accountId: id, sessionId: id, name: id, engine: "simulated" };
      return accounts.insertOne(newAccountDoc(a, new Date(), null) as never);
    };
    await add();
    // Once the first account shows, the aggregate was just computed (an earlier scrape may be cached).
    await waitFor(async () => count(await scrape()) === 1, {
      what: "the first account in the aggregate",
      timeoutMs: ACCOUNTS_AGGREGATE_TTL_MS + 5000,
      intervalMs: 200,
    });
    const at = Date.now();
    const first = 1;
    await add();
    const second = count(await scrape());
    if (Date.now() - at < ACCOUNTS_AGGREGATE_TTL_MS - 1000)
      assert.equal(second, first, "a scrape within the TTL reuses the aggregate");
    await waitFor(async () => count(await scrape()) === first + 1, {
      what: "the aggregate to be computed again after its TTL",
      timeoutMs: ACCOUNTS_AGGREGATE_TTL_MS + 5000,
      intervalMs: 500,
    });
  });
});

describe("security: /metrics tokens and the failed-auth limit", function () {
  this.timeout(30000);
  const token = "metrics-token-of-a-good-length-0123456789";
  let gc: GatewayCluster;
  before(async () => {
    gc = new GatewayCluster({ metricsToken: token, authFailuresPerMinute: 3 });
    await gc.addGateway("gw");
    await gc.start();
  });
  after(async () => gc?.stop());

  it("3 wrong tokens are 401s; then the address gets 429 RATE_LIMITED, even with the right token", async () => {
    for (let i = 0; i < 3; i++) {
      const res = await gc.gw.call("GET", "/metrics", { headers: { authorization: `Bearer guess-${i}` } });
      assert.equal(res.status, 401, `wrong token ${i + 1}`);
    }
    for (const t of ["guess-9", token]) {
      const res = await gc.gw.call("GET", "/metrics", { headers: { authorization: `Bearer ${t}` } });
      assert.equal(res.status, 429);
      assert.equal(res.json.type, "RATE_LIMITED");
      assert.ok(Number(res.headers["retry-after"]) >= 1);
    }
  });
});
