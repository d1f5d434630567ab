// Status changes an engine reported before its node lost the workspace (its lease lapsed: the node
// fenced itself and closed every session) are not applied afterwards: no next owner may have written
// yet, so their fenced write could still land, and their `account.status` event would be logged and
// broadcast stamped with a node and epoch that gave the workspace up. Not after a wait for the
// database that the fence overtook, nor when asking for the fence is what found the lease lapsed.
import { strict as assert } from "node:assert";
import type { Engine, SimulationHooks } from "../../../src/engines/base.ts";
import { DatabaseUnavailableError } from "../../../src/errors.ts";
import type { Fence, Ownership } from "../../../src/placement/fence.ts";
import type { Publisher } from "../../../src/session/event-publisher.ts";
import { waitFor } from "../../support/wait.ts";
import { simulatedRuntime } from "./simulated-runtime.ts";

/** What an event says: a status, or "message" for a received one. */
const shown = (event: string, payload: unknown) =>
  event === "account.status" ? (payload as { status: string }).status : event.replace("account.", "");

/** A runtime on workspace "ws", owned until `fence()`: the node's fence (lease lapsed), which stops
 * every session as the lease's fence does. What reached the database and the listeners is in `seen`. */
function fencedRuntime(opts: { beforeLog?: () => void; beforeWrite?: () => void } = {}) {
  const fence: Fence = { node: "n1", epoch: 1 };
  let owned = true;
  /** Set: the next look at the fence finds the lease lapsed (Liveness.isCurrent fences at once). */
  let lapseOnNextLook = false;
  let fencing: Promise<void> | undefined;
  const seen = { writes: 0, logged: [] as string[], broadcast: [] as string[] };
  const ownership: Ownership = {
    current: () => {
      if (lapseOnNextLook) {
        lapseOnNextLook = false;
        fenceNode();
      }
      return owned ? fence : null;
    },
    acquire: async () => fence,
  };
  const publisher: Publisher = {
    record: async (event, payload) => {
      opts.beforeLog?.();
      if (event !== "account.qr") seen.logged.push(shown(event, payload));
      return payload;
    },
    send: (event, payload) => {
      if (event !== "account.qr") seen.broadcast.push(shown(event, payload));
    },
  };
  const { runtime, docOf } = simulatedRuntime({
    ownership,
    publisher,
    beforeWrite: async () => {
      seen.writes++;
      opts.beforeWrite?.();
    },
  });
  function fenceNode(): void {
    owned = false;
    fencing = runtime.stopAll();
  }
  /** Starts "acc1" up to its QR screen, applied: the engine's simulation hooks. */
  async function scanning(): Promise<SimulationHooks> {
    await runtime.start(docOf("acc1"));
    const { result: engine } = await runtime.drive("acc1", async (e: Engine) => e);
    await waitFor(() => runtime.info("acc1")?.status === "qr_scanning", { what: "the QR screen" });
    await runtime.drive("acc1", async () => undefined);
    return (engine as Engine & { simulate: SimulationHooks }).simulate;
  }
  /** Settles once the fence's stops have ended (each waits for its session's pipeline). */
  async function fenced(): Promise<void> {
    // Wrapped: waitFor would await the promise itself, which settles with nothing.
    const stops = await waitFor(() => fencing && { fencing }, { what: "the node to fence itself" });
    await stops.fencing;
  }
  return { runtime, seen, scanning, fenced, fenceNode, lapseOnNextLook: () => void (lapseOnNextLook = true) };
}

describe("session/runtime: changes of a session whose node lost the workspace", () => {
  for (const failing of ["write", "log"] as const) {
    it(`a run whose ${failing} met a database outage is not tried again once the node fenced itself meanwhile`, async () => {
      let outage = false;
      /** The database fails the run's first try; during the wait that follows the node fences itself,
       * and the database is back for the next try. */
      const failOnce = () => {
        if (!outage) return;
        outage = false;
        setTimeout(() => c.fenceNode(), 0);
        throw new DatabaseUnavailableError("connect ECONNREFUSED");
      };
      const c = fencedRuntime(failing === "write" ? { beforeWrite: failOnce } : { beforeLog: failOnce });
      const simulate = await c.scanning();
      const before = {
        writes: c.seen.writes,
        logged: c.seen.logged.length,
        broadcast: c.seen.broadcast.length,
      };
      outage = true;
      await simulate.scan("4915100000009"); // authenticated (then connected, after the fence: dropped)
      await c.fenced();

      assert.equal(c.seen.writes - before.writes, failing === "write" ? 1 : 0, "no write after the fence");
      // Logged before the write while the fence held (the log comes first, by design), or not at all.
      const logged = failing === "write" ? ["authenticated"] : [];
      assert.deepEqual(c.seen.logged.slice(before.logged), logged, "nothing logged after the fence");
      assert.deepEqual(c.seen.broadcast.slice(before.broadcast), [], "nothing broadcast");
    });
  }

  it("a received message waiting for the database is not relayed once the node fenced itself meanwhile", async () => {
    let outage = false;
    const c = fencedRuntime({
      beforeLog: () => {
        if (!outage) return;
        outage = false;
        setTimeout(() => c.fenceNode(), 0);
        throw new DatabaseUnavailableError("connect ECONNREFUSED");
      },
    });
    const simulate = await c.scanning();
    await simulate.scan("4915100000009");
    await waitFor(() => c.runtime.info("acc1")?.status === "connected", { what: "the account connected" });
    await c.runtime.drive("acc1", async () => undefined);
    outage = true;
    await simulate.message("4915100000001", "hello");
    await c.fenced();

    assert.ok(!c.seen.logged.includes("message"), "not logged after the fence");
    assert.ok(!c.seen.broadcast.includes("message"), "not broadcast");
  });

  it("a run whose look at the fence finds the lease lapsed (and the session closed) writes, logs and broadcasts nothing", async () => {
    const c = fencedRuntime();
    const simulate = await c.scanning();
    const before = {
      writes: c.seen.writes,
      logged: c.seen.logged.length,
      broadcast: c.seen.broadcast.length,
    };
    c.lapseOnNextLook();
    await simulate.scan("4915100000009");
    await c.fenced();

    assert.equal(c.seen.writes, before.writes, "no write");
    assert.deepEqual(c.seen.logged.slice(before.logged), [], "nothing logged");
    assert.deepEqual(c.seen.broadcast.slice(before.broadcast), [], "nothing broadcast");
  });

  it("a stop's `stopped` is still written once the fence is gone from memory: the database's fence decides", async () => {
    const c = fencedRuntime();
    await c.scanning();
    const writes = c.seen.writes;
    c.lapseOnNextLook();
    await c.runtime.stop("acc1");
    await c.fenced();
    assert.equal(c.seen.writes, writes + 1, "the stop's write");
    assert.deepEqual(c.seen.broadcast.slice(-1), ["stopped"]);
  });
});
