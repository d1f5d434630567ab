// Wrong API keys from one address are limited per minute; past the limit the address is refused
// before any key of it is looked up.
import { strict as assert } from "node:assert";
import { GatewayCluster } from "../api/helpers.ts";

describe("security: failed-auth limit per client address", function () {
  this.timeout(30000);
  let gc: GatewayCluster;
  before(async () => {
    gc = new GatewayCluster({ authFailuresPerMinute: 3 });
    await gc.addGateway("gw");
    await gc.addWorker("w1");
    await gc.start();
  });
  after(async () => gc?.stop());

  it("20 right keys at once from one address all pass (lookups past the limit wait, they are not refused)", async () => {
    const keys = [];
    for (let i = 0; i < 20; i++) keys.push((await gc.createKey(`ws_many${i}`)).key);
    const answers = await Promise.all(keys.map((key) => gc.gw.call("GET", "/api/v1/accounts", { key })));
    assert.deepEqual(
      answers.map((a) => a.status),
      keys.map(() => 200),
    );
  });

  it("3 wrong keys are 401s; then the address gets 429 with Retry-After, even with a right key", async () => {
    const { key } = await gc.createKey("ws_fa");
    assert.equal((await gc.gw.call("GET", "/api/v1/accounts", { key })).status, 200);
    for (let i = 0; i < 3; i++) {
      const res = await gc.gw.call("GET", "/api/v1/accounts", { key: `sb_live_wrong${i}` });
      assert.equal(res.status, 401, `wrong key ${i + 1}`);
    }
    for (const k of [`sb_live_wrong9`, key]) {
      const res = await gc.gw.call("GET", "/api/v1/accounts", { key: k });
      assert.equal(res.status, 429);
      assert.equal(res.json.type, "RATE_LIMITED");
      assert.ok(Number(res.headers["retry-after"]) >= 1);
    }
  });
});
