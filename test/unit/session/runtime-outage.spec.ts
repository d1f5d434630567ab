// A status change that meets a database outage (its event not logged, its status not written) waits
// for the database and is applied once it is back, with the changes after it in order: the account's
// status and events catch up with its engine instead of the change being dropped. So does a message
// received meanwhile (WhatsApp does not deliver it again).
import { strict as assert } from "node:assert";
import { DatabaseUnavailableError } from "../../../src/errors.ts";
import type { Publisher } from "../../../src/session/event-publisher.ts";
import { waitFor } from "../../support/wait.ts";
import { simulatedRuntime } from "./simulated-runtime.ts";

describe("session/runtime: status changes during a database outage", () => {
  it("are applied once the database is back, each event logged and broadcast once, in order", async () => {
    const down = { now: false, refused: 0 };
    const logged: string[] = [];
    const broadcast: string[] = [];
    const statusOf = (payload: unknown) => (payload as { status: string }).status;
    const messages: string[] = [];
    const publisher: Publisher = {
      record: async (event, payload) => {
        if (down.now) {
          down.refused++;
          throw new DatabaseUnavailableError("connect ECONNREFUSED");
        }
        if (event === "account.status") logged.push(statusOf(payload));
        if (event === "account.message") messages.push((payload as { text: string }).text);
        return payload;
      },
      send: (event, payload) => {
        if (event === "account.status") broadcast.push(statusOf(payload));
      },
    };
    const { runtime, docOf } = simulatedRuntime({ publisher });
    await runtime.start(docOf("acc7"));
    const { result: engine } = await runtime.drive("acc7", async (e) => e);
    const simulate = (
      engine as unknown as {
        simulate: { scan(phone: string): Promise<void>; message(from: string, text: string): Promise<void> };
      }
    ).simulate;
    await waitFor(() => runtime.info("acc7")?.status === "qr_scanning", { what: "the QR screen" });

    down.now = true;
    await waitFor(() => simulate.scan("4915100000009").then(() => true), { what: "the QR scanned" });
    await waitFor(() => down.refused >= 2, { what: "the change refused, then tried again" });
    assert.equal(runtime.info("acc7")?.status, "qr_scanning", "nothing applied while the database is away");

    down.now = false;
    await waitFor(() => runtime.info("acc7")?.status === "connected", { what: "the account connected" });
    assert.deepEqual(logged.slice(-2), ["authenticated", "connected"]);
    assert.deepEqual(broadcast.slice(-2), ["authenticated", "connected"]);
    assert.equal(logged.filter((s) => s === "authenticated").length, 1, "logged once");
    assert.equal(broadcast.filter((s) => s === "connected").length, 1, "broadcast once");

    // A message received while the database is away is logged once it is back.
    down.now = true;
    const refused = down.refused;
    await simulate.message("4915100000001", "while away");
    await waitFor(() => down.refused >= refused + 2, { what: "the message refused, then tried again" });
    down.now = false;
    await waitFor(() => messages.includes("while away"), { what: "the message logged" });
    assert.deepEqual(messages, ["while away"]);
    await runtime.stop("acc7");
  });

  it("a stop during the outage waits for the queued messages a bounded time, then drops the rest", async () => {
    const down = { now: false, attempts: 0 };
    const publisher: Publisher = {
      record: async (_event, payload) => {
        if (down.now) {
          down.attempts++;
          throw new DatabaseUnavailableError("connect ECONNREFUSED");
        }
        return payload;
      },
      send: () => undefined,
    };
    const { runtime, connected } = simulatedRuntime({ publisher, closedBudgetMs: 300 });
    const simulate = await connected("acc8");
    down.now = true;
    for (let i = 0; i < 20; i++) await simulate.message("4915100000001", `m${i}`);
    await waitFor(() => down.attempts >= 1, { what: "the first message waiting for the database" });
    const began = Date.now();
    await runtime.stop("acc8");
    const took = Date.now() - began;
    assert.ok(took < 3000, `the stop took ${took} ms: the budget (300 ms) bounds it, not 20 messages' waits`);
    assert.ok(down.attempts < 20, `${down.attempts} attempts: those after the budget are dropped unsent`);
  });

  it("an event whose logging landed but whose answer was lost is tried again under its key, not a new one", async () => {
    // What each event was recorded under: one key per event, however many attempts it took.
    const keysOf = new Map<string, Set<string>>();
    const attempts = new Map<string, number>();
    const lost = new Set<string>();
    let losing = false;
    const publisher: Publisher = {
      record: async (event, payload, key) => {
        const p = payload as { status?: string; text?: string };
        const what = `${event} ${p.status ?? p.text}`;
        keysOf.set(what, (keysOf.get(what) ?? new Set()).add(String(key)));
        attempts.set(what, (attempts.get(what) ?? 0) + 1);
        // The write landed; its answer is lost once to the database going away.
        if (losing && key && !lost.has(key)) {
          lost.add(key);
          throw new DatabaseUnavailableError("connection closed");
        }
        return payload;
      },
      send: () => undefined,
    };
    const { runtime, docOf } = simulatedRuntime({ publisher });
    await runtime.start(docOf("acc9"));
    const { result: engine } = await runtime.drive("acc9", async (e) => e);
    const simulate = (
      engine as unknown as {
        simulate: { scan(phone: string): Promise<void>; message(from: string, text: string): Promise<void> };
      }
    ).simulate;
    await waitFor(() => runtime.info("acc9")?.status === "qr_scanning", { what: "the QR screen" });
    losing = true;
    await simulate.scan("4915100000010");
    await waitFor(() => runtime.info("acc9")?.status === "connected", { what: "the account connected" });
    await simulate.message("4915100000001", "while flaky");
    await waitFor(() => keysOf.has("account.message while flaky") && lost.size >= 3, {
      what: "the message tried again",
    });
    await runtime.drive("acc9", async () => undefined);
    for (const what of [
      "account.status authenticated",
      "account.status connected",
      "account.message while flaky",
    ]) {
      const keys = [...(keysOf.get(what) ?? [])];
      assert.equal(keys.length, 1, `${what}: recorded under ${keys.join(", ")}`);
      assert.notEqual(keys[0], "undefined", `${what}: recorded without a key`);
      assert.equal(attempts.get(what), 2, `${what}: lost once, then recorded again`);
    }
    await runtime.stop("acc9");
  });
});
