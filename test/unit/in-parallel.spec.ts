// inParallel: at most `limit` at once, started in order, all ended before it resolves; and the lease
// renewals that use it (renewDue): due leases renewed several at once, the lost ones reported.
import { strict as assert } from "node:assert";
import { inParallel } from "../../src/in-parallel.ts";
import { renewDue, type HeldLease } from "../../src/store/webhook-leases-repo.ts";

describe("inParallel", () => {
  it("runs at most `limit` at once, starting them in order, and resolves once all ended", async () => {
    let running = 0;
    let most = 0;
    const started: number[] = [];
    const ended: number[] = [];
    await inParallel([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      started.push(n);
      most = Math.max(most, ++running);
      await new Promise((r) => setImmediate(r));
      running--;
      ended.push(n);
    });
    assert.deepEqual(started, [1, 2, 3, 4, 5, 6, 7]);
    assert.equal(most, 3);
    assert.equal(ended.length, 7);
    await inParallel([], 3, async () => assert.fail("nothing to run"));
  });
});

describe("webhook leases: renewDue", () => {
  it("renews the due leases several at once (8), leaves the others, and reports the lost ones (not one whose renewal failed while it still runs)", async () => {
    const now = Date.now();
    const held = new Map<string, HeldLease>();
    for (let i = 0; i < 20; i++)
      held.set(`wh_${i}`, { endpointId: `wh_${i}`, term: 1, validUntil: now + (i < 18 ? 1000 : 60_000) });
    held.get("wh_5")!.validUntil = now - 1; // ran out while its renewal was on its way
    let running = 0;
    let most = 0;
    const renewed: string[] = [];
    const leases = {
      async renew(lease: HeldLease) {
        most = Math.max(most, ++running);
        await new Promise((r) => setImmediate(r));
        running--;
        renewed.push(lease.endpointId);
        if (lease.endpointId === "wh_3") return false;
        if (lease.endpointId === "wh_4" || lease.endpointId === "wh_5") throw new Error("database away");
        return true;
      },
    };
    const lost = await renewDue(leases, held, 30_000);
    assert.equal(renewed.length, 18, "the two with most of their lease left are not due");
    assert.equal(most, 8);
    // wh_4's renewal failed while its lease still runs: held, tried again next time; wh_5's ran out.
    assert.deepEqual(lost.sort(), ["wh_3", "wh_5"]);
  });
});
