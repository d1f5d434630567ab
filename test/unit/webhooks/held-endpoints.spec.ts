// The endpoints a node delivers: claims another node won back off, idle ones are found, lost leases are
// forgotten, and a release gives the lease back. Leases are kept in memory and time is a test clock
// here (the repository's compare-and-set is tested against FerretDB in test/integration/webhooks).
import { strict as assert } from "node:assert";
import { HeldEndpoints } from "../../../src/webhooks/held-endpoints.ts";
import type { HeldLease } from "../../../src/store/webhook-leases-repo.ts";

const TTL = 300;

class MemoryLeases {
  /** Endpoints another node holds. */
  taken = new Set<string>();
  /** Endpoints whose renewal fails (another node took them over). */
  lost = new Set<string>();
  released: string[] = [];
  async claim(endpointId: string): Promise<HeldLease | null> {
    if (this.taken.has(endpointId)) return null;
    return { endpointId, term: 1, validUntil: Date.now() + TTL };
  }
  async renew(lease: HeldLease): Promise<boolean> {
    if (this.lost.has(lease.endpointId)) return false;
    lease.validUntil = Date.now() + TTL;
    return true;
  }
  async release(lease: HeldLease): Promise<void> {
    this.released.push(lease.endpointId);
  }
}

describe("webhooks/held-endpoints", () => {
  let leases: MemoryLeases;
  let held: HeldEndpoints;
  let clock: number;
  beforeEach(() => {
    leases = new MemoryLeases();
    clock = 1_000_000;
    held = new HeldEndpoints(leases, TTL, () => clock);
  });

  it("a claim another node won is not tried again for a third of a lease period", async () => {
    leases.taken.add("wh_1");
    assert.equal(await held.claim("wh_1"), null);
    assert.equal(held.mayClaim("wh_1"), false);
    clock += TTL / 3 - 1;
    assert.equal(held.mayClaim("wh_1"), false);
    clock += 1;
    assert.equal(held.mayClaim("wh_1"), true);
    leases.taken.delete("wh_1");
    assert.ok(await held.claim("wh_1"));
    assert.deepEqual(held.ids(), ["wh_1"]);
    assert.equal(held.mayClaim("wh_1"), false, "held: nothing to claim");
  });

  it("an endpoint without work for a lease period is idle; work makes it busy again", async () => {
    await held.claim("wh_1");
    clock += TTL - 1;
    assert.deepEqual(held.idle(), []);
    clock += 1;
    assert.deepEqual(held.idle(), ["wh_1"]);
    held.busy("wh_1");
    assert.deepEqual(held.idle(), []);
  });

  it("covers only what ends before the lease does; a lost renewal forgets the endpoint", async () => {
    await held.claim("wh_1");
    await held.claim("wh_2");
    assert.equal(held.covers("wh_1", Date.now()), true);
    assert.equal(held.covers("wh_1", Date.now() + 10 * TTL), false);
    assert.equal(held.covers("wh_3", Date.now()), false, "not held");
    // Due for renewal once a third of the period is gone (renewals go by the real clock).
    await new Promise((r) => setTimeout(r, TTL / 2));
    leases.lost.add("wh_2");
    assert.deepEqual(await held.renew(), ["wh_2"]);
    assert.deepEqual(held.ids(), ["wh_1"]);
  });

  it("a release stops holding at once and gives the lease back", async () => {
    await held.claim("wh_1");
    const releasing = held.release("wh_1");
    assert.equal(held.holds("wh_1"), false);
    await releasing;
    assert.deepEqual(leases.released, ["wh_1"]);
    await held.claim("wh_2");
    await held.releaseAll();
    assert.deepEqual(leases.released, ["wh_1", "wh_2"]);
    assert.deepEqual(held.ids(), []);
  });
});
