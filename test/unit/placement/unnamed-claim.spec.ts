// A workspace the placement table does not name (its bucket lost its records) whose accounts still name
// a node holding a lease: that node runs them. A call routed here, or a create, must not claim the
// workspace and start its sessions a second time; once that node holds no lease, the claim goes above
// the epochs the accounts carry (so their fenced writes accept the new owner).
import { strict as assert } from "node:assert";
import type { ServiceBroker } from "moleculer";
import { loadConfig } from "../../../src/config.ts";
import { WorkspaceUnavailableError } from "../../../src/errors.ts";
import { WorkerOwnership, type SessionHost } from "../../../src/placement/worker-ownership.ts";
import { memoryPlacement } from "../../support/memory-placement.ts";

describe("placement/worker-ownership: claiming a workspace the table does not name", () => {
  it("not while a node its accounts name holds a lease; then above their epochs", async () => {
    const { placement, records, leases } = memoryPlacement();
    leases.add("n0");
    const host: SessionHost = {
      local: () => [],
      size: 0,
      handOverWorkspace: async () => 0,
      stopWorkspace: async () => 0,
      stopAll: async () => undefined,
    };
    const ownership = new WorkerOwnership({
      broker: { nodeID: "n1" } as ServiceBroker,
      cfg: loadConfig(),
      placement,
      host,
      logger: { info() {}, debug() {}, warn() {} },
    });
    await ownership.start();
    // What the reconciler's broad sweep read (a table that lost its records: a new lease term, or the
    // bucket found made again).
    ownership.noteUnnamed(new Map([["ws", { lastOwners: ["n0"], above: 41 }]]));
    try {
      await assert.rejects(ownership.route("ws", 0), WorkspaceUnavailableError);
      await assert.rejects(ownership.acquire("ws"), WorkspaceUnavailableError);
      assert.equal(records.get("ws"), undefined, "not claimed while n0 runs it");

      leases.delete("n0");
      assert.equal(await ownership.route("ws", 0), null, "runs here now");
      assert.equal(records.get("ws")?.node, "n1");
      assert.equal(records.get("ws")?.epoch, 42, "above the accounts' epochs");
    } finally {
      await ownership.stop();
    }
  });

  it("between the table's loss and the sweep's read, a claim asks the accounts itself", async () => {
    const { placement, records, leases } = memoryPlacement();
    leases.add("n0");
    (placement.mirror as unknown as { bucketResets: number }).bucketResets = 1; // found made again
    const ownership = new WorkerOwnership({
      broker: { nodeID: "n1" } as ServiceBroker,
      cfg: loadConfig(),
      placement,
      host: {
        local: () => [],
        size: 0,
        handOverWorkspace: async () => 0,
        stopWorkspace: async () => 0,
        stopAll: async () => undefined,
      },
      logger: { info() {}, debug() {}, warn() {} },
      accountOwners: async () => ({ lastOwners: ["n0"], above: 41 }),
    });
    await ownership.start();
    try {
      await assert.rejects(ownership.route("ws", 0), WorkspaceUnavailableError);
      assert.equal(records.get("ws"), undefined, "not claimed while n0 runs it");
      // Once the sweep has read every workspace (here: none wanting to run), no read of its own.
      ownership.noteUnnamed(new Map(), 1);
      assert.equal(await ownership.route("ws2", 0), null);
      assert.equal(records.get("ws2")?.epoch, 1);
    } finally {
      await ownership.stop();
    }
  });
});
