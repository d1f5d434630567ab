// A send's answer must not wait for the session's other changes: a busy chat's incoming messages (each
// published, its media kept) queue in the session's pipeline, and a send that waited for that queue
// to empty answered late (and sat in `sending` all that time). The publish of an incoming message is
// held open here (a slow event log); the engine is the simulated one.
import { strict as assert } from "node:assert";
import { newAccountDoc, type AccountDoc } from "../../../src/accounts/types.ts";
import type { Engine, SimulationHooks } from "../../../src/engines/base.ts";
import type { Fence, Ownership } from "../../../src/placement/fence.ts";
import { SessionRuntime } from "../../../src/session/runtime.ts";
import type { AccountsRepo } from "../../../src/store/accounts-repo.ts";
import type { AuthStore } from "../../../src/store/auth-store.ts";
import { waitFor } from "../../support/wait.ts";

describe("session/runtime: a send while incoming messages wait to be published", () => {
  it("is answered at once, not after the session's queue of changes", async () => {
    const fence: Fence = { node: "n1", epoch: 1 };
    const ownership: Ownership = { current: () => fence, acquire: async () => fence };
    const doc: AccountDoc = newAccountDoc(
      { workspaceId: "ws", accountId: "acc3", sessionId: "s3", name: "a", engine: "simulated" },
      new Date(),
      fence,
    );
    const repo = {
      writeStatus: async () => true,
      claimOne: async (_id: string, f: Fence, patch: Partial<AccountDoc>) => ({
        doc: { ...doc, ...patch, node: f.node, epoch: f.epoch },
        previous: "stopped",
        neverOwned: true,
      }),
    } as unknown as AccountsRepo;
    const authStore = {
      load: async () => null,
      save: async () => undefined,
      delete: async () => undefined,
      has: async () => false,
    } as unknown as AuthStore;
    let releasePublish!: () => void;
    const publishHeld = new Promise<void>((r) => (releasePublish = r));
    let incomingPublished = false;
    const runtime = new SessionRuntime({
      nodeId: "n1",
      repo,
      authStore,
      ownership,
      publisher: {
        record: async (event, payload) => {
          if (event === "account.message") {
            await publishHeld; // a slow event log
            incomingPublished = true;
          }
          return payload;
        },
        send: () => undefined,
      },
      engine: { qr: { firstTtlMs: 60000, refreshMs: 20000, max: 5 } },
      logger: { info() {}, warn() {}, error() {}, debug() {} } as never,
    });
    await runtime.start(doc);
    const { result: engine } = await runtime.drive("acc3", async (e: Engine) => e);
    const simulate = (engine as Engine & { simulate: SimulationHooks }).simulate;
    // Scanned as soon as its QR shows (refused before).
    await waitFor(() => simulate.scan("4915100000009").then(() => true), { what: "a QR to scan" });
    await runtime.drive("acc3", async () => undefined); // connected, applied
    await simulate.message("4915100000001", "hello"); // its publish now waits
    try {
      const sent = await runtime.send("acc3", { to: "4915100000001", type: "text", text: "hi" });
      assert.match(sent.id, /^true_/);
      assert.equal(incomingPublished, false, "answered while the incoming message still waits");
    } finally {
      releasePublish();
    }
    await runtime.stopAll();
  });
});
