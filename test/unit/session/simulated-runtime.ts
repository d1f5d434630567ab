// A SessionRuntime over the simulated engine with a database that always agrees (no server: the
// runtime's own ordering is under test); `connected` starts an account and links it, returning its
// engine's simulation hooks.
import { newAccountDoc, type AccountDoc } from "../../../src/accounts/types.ts";
import type { Engine, SimulationHooks } from "../../../src/engines/base.ts";
import type { Fence, Ownership } from "../../../src/placement/fence.ts";
import type { Publisher } from "../../../src/session/event-publisher.ts";
import { SessionRuntime, type RuntimeOptions } from "../../../src/session/runtime.ts";
import type { AccountsRepo } from "../../../src/store/accounts-repo.ts";
import type { AuthStore } from "../../../src/store/auth-store.ts";
import { waitFor } from "../../support/wait.ts";

const NO_EVENTS: Publisher = { record: async (_e, p) => p, send: () => undefined };

export interface SimulatedRuntimeOptions {
  /** @default records and sends nothing */
  publisher?: Publisher;
  /** @default always this node, epoch 1 */
  ownership?: Ownership;
  /** A registered engine name. @default "simulated" */
  engine?: string;
  /** Runs before a claim is answered (a claim write held open). */
  beforeClaim?: () => Promise<void>;
  /** The receipts' record (what the status store answers). @default none */
  recordAck?: RuntimeOptions["recordAck"];
  /** Runs before a status write is answered (a write held open). */
  beforeWrite?: () => Promise<void>;
  /** How long a closed session's changes wait for the database. @default the runtime's */
  closedBudgetMs?: number;
  /** @default holds nothing and accepts every save and delete */
  authStore?: AuthStore;
}

export function simulatedRuntime(opts: SimulatedRuntimeOptions = {}) {
  const fence: Fence = { node: "n1", epoch: 1 };
  const ownership: Ownership = opts.ownership ?? { current: () => fence, acquire: async () => fence };
  const repo = {
    writeStatus: async () => {
      await opts.beforeWrite?.();
      return true;
    },
    // A restore's claim, and its read-back: each account as docOf records it (claimed, initializing).
    claimMany: async (_ws: string, ids: string[]) => {
      await opts.beforeClaim?.();
      return ids.length;
    },
    byIds: async (ids: string[]) => ids.map((id) => docOf(id)),
    claimOne: async (id: string, f: Fence, patch: Partial<AccountDoc>) => {
      await opts.beforeClaim?.();
      return {
        doc: { ...docOf(id), ...patch, node: f.node, epoch: f.epoch },
        previous: "stopped",
        neverOwned: true,
      };
    },
  } as unknown as AccountsRepo;
  const authStore =
    opts.authStore ??
    ({
      load: async () => null,
      save: async () => undefined,
      delete: async () => undefined,
      has: async () => false,
    } as unknown as AuthStore);
  const docOf = (accountId: string): AccountDoc =>
    newAccountDoc(
      {
        workspaceId: "ws",
        accountId,
        sessionId: `s-${accountId}`,
        name: "a",
        engine: opts.engine ?? "simulated",
      },
      new Date(),
      fence,
    );
  const runtime = new SessionRuntime({
    nodeId: "n1",
    repo,
    authStore,
    ownership,
    publisher: opts.publisher ?? NO_EVENTS,
    engine: { qr: { firstTtlMs: 60000, refreshMs: 20000, max: 5 }, simulatedAckMs: 10 },
    recordAck: opts.recordAck,
    closedBudgetMs: opts.closedBudgetMs,
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

  return { runtime, connected, docOf };
}

/** A step that waits until released (a slow publish, a claim write held open). */
export function heldStep() {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  return { held, release };
}
