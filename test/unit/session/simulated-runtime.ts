// A SessionRuntime over the simulated engine with a database that always agrees (no server: the
// runtime's own ordering is under test) and the publisher given; `connected` starts an account and
// links it, returning its engine's simulation hooks.
import { newAccountDoc, type AccountDoc } from "../../../src/accounts/types.ts";
import type { Engine, SimulationHooks } from "../../../src/engines/base.ts";
import type { Fence, Ownership } from "../../../src/placement/fence.ts";
import type { Publisher } from "../../../src/session/event-publisher.ts";
import { SessionRuntime } from "../../../src/session/runtime.ts";
import type { AccountsRepo } from "../../../src/store/accounts-repo.ts";
import type { AuthStore } from "../../../src/store/auth-store.ts";
import { waitFor } from "../../support/wait.ts";

export function simulatedRuntime(publisher: Publisher) {
  const fence: Fence = { node: "n1", epoch: 1 };
  const ownership: Ownership = { current: () => fence, acquire: async () => fence };
  const repo = {
    writeStatus: async () => true,
    claimOne: async (id: string, f: Fence, patch: Partial<AccountDoc>) => ({
      doc: { ...docOf(id), ...patch, node: f.node, epoch: f.epoch },
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
  const docOf = (accountId: string): AccountDoc =>
    newAccountDoc(
      { workspaceId: "ws", accountId, sessionId: `s-${accountId}`, name: "a", engine: "simulated" },
      new Date(),
      fence,
    );
  const runtime = new SessionRuntime({
    nodeId: "n1",
    repo,
    authStore,
    ownership,
    publisher,
    engine: { qr: { firstTtlMs: 60000, refreshMs: 20000, max: 5 } },
    logger: { info() {}, warn() {}, error() {}, debug() {} } as never,
  });

  /** Starts `accountId` and links it; its engine's simulation hooks once it is connected. */
  async function connected(accountId: string): Promise<SimulationHooks> {
    await runtime.start(docOf(accountId));
    const { result: engine } = await runtime.drive(accountId, async (e: Engine) => e);
    const simulate = (engine as Engine & { simulate: SimulationHooks }).simulate;
    // Scanned as soon as its QR shows (refused before).
    await waitFor(() => simulate.scan("4915100000009").then(() => true), { what: "a QR to scan" });
    await runtime.drive(accountId, async () => undefined); // connected, applied
    return simulate;
  }

  return { runtime, connected };
}

/** A publish that waits until released (a slow event log). */
export function heldPublish() {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  return { held, release };
}
