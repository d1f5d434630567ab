// The simulated engine when the auth store refuses a write, seen through the session runtime, as webjs:
// a logout whose delete fails ends the account `failed` with a message naming the cause (before, it
// stayed `connected` with a halted engine); a scan whose save fails is connected all the same (before,
// `authenticated` for ever); the phone's own unlink ends `logged_out` whatever the store says.
import { strict as assert } from "node:assert";
import type { Engine, SimulationHooks } from "../../../src/engines/base.ts";
import type { Publisher } from "../../../src/session/event-publisher.ts";
import type { AuthStore } from "../../../src/store/auth-store.ts";
import { waitFor } from "../../support/wait.ts";
import { simulatedRuntime } from "./simulated-runtime.ts";

interface StatusEvent {
  accountId: string;
  status: string;
  reason?: string;
  message?: string;
}

/** An auth store holding nothing whose saves and deletes fail while `refuse` says so. */
function refusingStore() {
  const refuse = { save: false, delete: false };
  const store: AuthStore = {
    load: async () => null,
    save: async () => {
      if (refuse.save) throw new Error("disk quota exceeded");
    },
    delete: async () => {
      if (refuse.delete) throw new Error("not master");
    },
    has: async () => false,
  };
  return { store, refuse };
}

describe("session/runtime: the simulated engine when the auth store refuses a write", () => {
  function runtimeWith(store: AuthStore) {
    const statuses: StatusEvent[] = [];
    const publisher: Publisher = {
      record: async (_e, p) => p,
      send: (event, payload) => {
        if (event === "account.status") statuses.push(payload as StatusEvent);
      },
    };
    const rt = simulatedRuntime({ publisher, authStore: store });
    const failure = (accountId: string) =>
      waitFor(() => statuses.find((e) => e.accountId === accountId && e.status === "failed"), {
        timeoutMs: 3000,
        what: `${accountId} failed`,
      });
    return { ...rt, statuses, failure };
  }

  it("logout() whose delete fails: failed/engine_error naming the delete, not connected with nothing running", async () => {
    const { store, refuse } = refusingStore();
    const { runtime, connected, failure } = runtimeWith(store);
    await connected("acc1");
    refuse.delete = true;
    await assert.rejects(runtime.logout("acc1"), /not master/);
    const failed = await failure("acc1");
    assert.equal(failed.reason, "engine_error");
    assert.equal(failed.message, "Deleting the auth state failed: not master");
    assert.equal(runtime.info("acc1"), null, "the session is closed: no engine is left here");
  });

  it("a scan whose save fails: connected all the same, as webjs (the device is linked), not authenticated for ever", async () => {
    const { store, refuse } = refusingStore();
    const { runtime, docOf, statuses } = runtimeWith(store);
    await runtime.start(docOf("acc2"));
    const { result: engine } = await runtime.drive("acc2", async (e: Engine) => e);
    const simulate = (engine as Engine & { simulate: SimulationHooks }).simulate;
    await waitFor(() => runtime.info("acc2")?.status === "qr_scanning", { what: "the QR screen" });
    refuse.save = true;
    await simulate.scan("4915100000011");
    await waitFor(() => runtime.info("acc2")?.status === "connected", { timeoutMs: 3000, what: "connected" });
    assert.equal(
      statuses.some((e) => e.accountId === "acc2" && e.status === "failed"),
      false,
    );
    await runtime.stop("acc2");
  });

  it("the phone unlinks and the delete fails: logged_out all the same, as webjs", async () => {
    const { store, refuse } = refusingStore();
    const { runtime, connected, statuses } = runtimeWith(store);
    const simulate = await connected("acc3");
    refuse.delete = true;
    await simulate.logout();
    await waitFor(() => statuses.some((e) => e.accountId === "acc3" && e.status === "logged_out"), {
      timeoutMs: 3000,
      what: "acc3 logged_out",
    });
    assert.equal(
      statuses.some((e) => e.accountId === "acc3" && e.status === "failed"),
      false,
    );
    await runtime.stop("acc3");
  });
});
