// The reconciler of a worker (DESIGN.md §7–8): on placement changes and every `reconcileMs` it
//   1. claims the workspaces of nodes whose lease expired (failover: each survivor claims those whose
//      HRW choice among the survivors it is; after a grace period any survivor claims what is still
//      orphaned — the CAS leaves one winner; none in a lease term's first TTL, while the others may
//      still be leasing again after an outage), and adopts records still naming this node from before
//      a fence or restart (a draining node passes those on to their next owner instead);
//   2. starts the engines of accounts with desiredState `running` in the workspaces it owns that have
//      not run under its current ownership yet, or whose start under it was lost (the runtime queues
//      them under the node's start concurrency; they restore from the AuthStore);
//   3. stops the engines of workspaces it no longer owns.
// A draining node that still holds workspaces (its drain had nowhere to send them) drains again once
// another worker can take them.
// Step 2 reads the accounts of every workspace the node owns: a pass asked for by a change (or that
// claimed something) does it, a periodic pass only every DATABASE_EVERY-th time — the safety net for
// what no event announces (a start lost on the way), at a tenth of the reads.
import type { AccountDoc } from "../accounts/types.ts";
import type { Config } from "../config.ts";
import { NEEDS_PERSON } from "../lifecycle/states.ts";
import { carriesFence } from "./fence.ts";
import { chooseOwner } from "./hrw.ts";
import type { UnnamedWorkspace, WorkerOwnership } from "./worker-ownership.ts";
import { inParallel } from "../in-parallel.ts";

type Logger = { info(...a: unknown[]): void; warn(...a: unknown[]): void; debug(...a: unknown[]): void };

/** What the reconciler needs from the session runtime and the accounts store. */
export interface ReconcileTarget {
  has(accountId: string): boolean;
  local(): { accountId: string; workspaceId: string }[];
  start(doc: AccountDoc): Promise<unknown>;
  /** Starts several accounts, claiming each workspace's in one update (a restore after a failover). */
  startMany?(docs: AccountDoc[]): Promise<unknown>;
  stopWorkspace(workspaceId: string): Promise<number>;
  /** Accounts with desiredState `running` in these workspaces. */
  desiredRunning(workspaceIds: string[]): Promise<AccountDoc[]>;
  /** Workspaces of accounts that want to run but were never placed (created while no worker answered). */
  unplacedWorkspaces?(): Promise<string[]>;
  /** Every workspace with an account that wants to run, with what its accounts say of their owners (the
   * caller skips those the table names). */
  unnamedWorkspaces?(): Promise<Map<string, UnnamedWorkspace>>;
}

/** Every this many passes (and on the first), a worker looks for accounts no worker ever took. */
const UNPLACED_SWEEP_EVERY = 10;
/** For this long after a lease term begins, or the placement bucket was found made again, every pass
 * sweeps every workspace wanting to run: the placement watch may still hold records of a bucket
 * JetStream lost (rebuilt within seconds), and a bucket made again names none. */
const BROAD_SWEEP_MS = 30_000;
/** Periodic passes read the owned workspaces' accounts every this many times (and on the first). */
const DATABASE_EVERY = 10;

export class Reconciler {
  private timer?: NodeJS.Timeout;
  private kickTimer?: NodeJS.Timeout;
  private running = false;
  private again = false;
  private stopped = true;
  private readonly orphanSince = new Map<string, number>();
  private readonly starting = new Set<string>();
  private passes = 0;
  /** The lease term seen last, and until when (epoch ms) its passes sweep every workspace wanting to
   * run (later sweeps of a term look at never-placed accounts only). */
  private termSeen: number | null = null;
  /** The placement bucket's resets seen last (see termSeen). */
  private resetsSeen = 0;
  private broadUntil = 0;
  /** When this term may begin to claim other nodes' orphaned workspaces: a lease TTL and a renewal
   * into it. After an outage of NATS (or of the whole cluster) every lease lapsed, and the node that
   * leases first would otherwise see every other node gone and take all their workspaces before
   * they lease again. */
  private othersFrom = 0;
  private ticks = 0;
  /** The next pass reads the owned workspaces' accounts (step 2). */
  private databaseDue = true;
  /** Resolves when the current pass (if any) ends; tests and drain wait on it. */
  private pass: Promise<void> = Promise.resolve();

  constructor(
    private readonly placement: WorkerOwnership,
    private readonly target: ReconcileTarget,
    private readonly cfg: Config,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.stopped = false;
    this.placement.onChange = () => this.kick();
    this.timer = setInterval(
      () => this.kick(0, { readDatabase: ++this.ticks % DATABASE_EVERY === 0 }),
      Math.max(50, this.cfg.reconcileMs),
    );
    this.kick(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.placement.onChange = () => undefined;
    clearInterval(this.timer);
    clearTimeout(this.kickTimer);
    await this.pass;
  }

  /**
   * Runs a pass soon (changes come in bursts: one pass for a burst). `readDatabase: false` (a periodic
   * tick) skips step 2 unless a change asked for it since.
   */
  kick(delayMs = 20, { readDatabase = true } = {}): void {
    if (this.stopped) return;
    if (readDatabase) this.databaseDue = true;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.kickTimer) return;
    this.kickTimer = setTimeout(() => {
      this.kickTimer = undefined;
      this.pass = this.run();
    }, delayMs);
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      do {
        this.again = false;
        const readDatabase = this.databaseDue;
        this.databaseDue = false;
        await this.reconcile({ readDatabase });
      } while (this.again && !this.stopped);
    } catch (err) {
      this.logger.warn(`Reconcile pass failed: ${(err as Error).message}`);
    } finally {
      this.running = false;
    }
  }

  /** One pass; exposed for tests. Step 2 runs when `readDatabase` or when the pass claimed something. */
  async reconcile({ readDatabase = true } = {}): Promise<void> {
    if (this.stopped || !this.placement.liveness.isCurrent()) return;
    const term = this.placement.liveness.term;
    if (term !== this.termSeen) {
      this.termSeen = term;
      this.broadUntil = Date.now() + BROAD_SWEEP_MS;
      this.othersFrom = Date.now() + this.cfg.leaseTtlMs + this.cfg.leaseRenewMs;
      this.orphanSince.clear();
    }
    if (this.placement.mirror.bucketResets !== this.resetsSeen) {
      // The table was lost with every node's lease intact: no new term comes to sweep what it named.
      this.resetsSeen = this.placement.mirror.bucketResets;
      this.broadUntil = Date.now() + BROAD_SWEEP_MS;
    }
    if (this.placement.draining)
      // Not awaited: hand-offs take seconds each, and the drain's own run reports them.
      void this.placement
        .continueDrain()
        .catch((err: Error) => this.logger.warn(`Continuing the drain failed: ${err.message}`));
    let claimed = await this.claimOrphansAndAdopt();
    const broad = Date.now() < this.broadUntil;
    if (!broad) this.placement.noteUnnamed(null);
    if (this.passes++ % UNPLACED_SWEEP_EVERY === 0 || broad) claimed += await this.claimUnplaced(broad);
    if (readDatabase || claimed > 0) {
      // This read answers every change announced so far (the pass's own claims kick too): the pass
      // that follows needs no second read unless a change comes after this point.
      this.databaseDue = false;
      try {
        await this.startOwned();
      } catch (err) {
        // The read (or the claims of a restore) failed: the next pass, periodic or not, tries again.
        this.databaseDue = true;
        throw err;
      }
    }
    await this.stopUnowned();
  }

  /** Returns how many workspaces it claimed. */
  private async claimOrphansAndAdopt(): Promise<number> {
    const p = this.placement;
    const mirror = p.mirror;
    if (!mirror.nodesKnown || !mirror.synced) return 0;
    const workers = p.workers();
    const now = Date.now();
    const grace = 2 * this.cfg.reconcileMs + this.cfg.leaseRenewMs;
    const claims: { ws: string; rec: ReturnType<typeof mirror.get> }[] = [];
    const strays: string[] = [];
    for (const rec of mirror.entries()) {
      const ws = rec.workspaceId;
      if (rec.node === p.nodeId) {
        // Adopted; or, by a draining node, passed on to the next owner.
        if (!p.current(ws)) {
          if (p.draining) strays.push(ws);
          else claims.push({ ws, rec });
        }
        continue;
      }
      if (mirror.isLive(rec.node)) {
        this.orphanSince.delete(ws);
        continue;
      }
      if (p.draining || now < this.othersFrom) continue;
      const since = this.orphanSince.get(ws) ?? now;
      this.orphanSince.set(ws, since);
      // Plain rendezvous over the survivors (no loads): every survivor computes the same owner for
      // an orphan at once, whatever claims it has seen so far.
      const chosen = chooseOwner(ws, workers);
      if (chosen === p.nodeId || now - since > grace) claims.push({ ws, rec });
    }
    if (strays.length > 0) await this.passOn(strays);
    if (claims.length === 0) return 0;
    let won = 0;
    await inParallel(claims, 16, async ({ ws, rec }) => {
      try {
        if (await p.claim(ws, rec ?? null)) {
          won++;
          this.orphanSince.delete(ws);
        }
      } catch (err) {
        this.logger.warn(`Claiming workspace ${ws} failed: ${(err as Error).message}`);
      }
    });
    if (won > 0) this.logger.info(`${p.nodeId} claimed ${won} workspace(s)`);
    return won;
  }

  private async passOn(workspaces: string[]): Promise<void> {
    let passed = 0;
    await inParallel(workspaces, 4, async (ws) => {
      try {
        if (await this.placement.passOn(ws)) passed++;
      } catch (err) {
        this.logger.warn(`Passing workspace ${ws} on failed: ${(err as Error).message}`);
      }
    });
    if (passed > 0)
      this.logger.info(
        `${this.placement.nodeId} (draining) passed on ${passed} workspace(s) it did not hold`,
      );
  }

  /**
   * Claims the workspaces of accounts recorded while no worker answered (they carry no owner) and, in
   * a lease term's first BROAD_SWEEP_MS, of any account wanting to run whose workspace the table does
   * not name, when this node is their rendezvous choice or their accounts last ran here; their accounts
   * then start like any other owned ones.
   */
  private async claimUnplaced(broad: boolean): Promise<number> {
    const p = this.placement;
    if (!this.target.unplacedWorkspaces || !p.mirror.synced || !p.mirror.nodesKnown || p.draining) return 0;
    const workers = p.workers();
    // Early in a term, every workspace that wants to run: a placement bucket that lost its records
    // (JetStream storage gone) names none of them, and their accounts still name their last owner (a
    // workspace is claimed only once that owner holds no lease, above the epochs its accounts carry).
    // A new term comes after a fence: JetStream away, perhaps losing its storage.
    const resets = p.mirror.bucketResets;
    const unnamed = broad && this.target.unnamedWorkspaces ? await this.target.unnamedWorkspaces() : null;
    if (unnamed) p.noteUnnamed(unnamed, resets);
    const candidates = unnamed ? [...unnamed.keys()] : await this.target.unplacedWorkspaces();
    // Its rendezvous choice, or a workspace whose accounts last ran here (the claim checks the leases of
    // the other nodes they name).
    const mine = candidates.filter(
      (ws) =>
        !p.mirror.get(ws) &&
        (chooseOwner(ws, workers) === p.nodeId || unnamed?.get(ws)?.lastOwners.includes(p.nodeId)),
    );
    let won = 0;
    await inParallel(mine, 16, async (ws) => {
      if (await p.claim(ws, null, false, unnamed?.get(ws)).catch(() => null)) won++;
    });
    if (won > 0) this.logger.info(`${p.nodeId} placed ${won} workspace(s) the placement table did not name`);
    return won;
  }

  private async startOwned(): Promise<void> {
    const p = this.placement;
    const owned = p.heldWorkspaces();
    if (owned.length === 0) return;
    const docs: AccountDoc[] = [];
    for (let i = 0; i < owned.length; i += 500)
      docs.push(...(await this.target.desiredRunning(owned.slice(i, i + 500))));
    const toStart = docs.filter((doc) => {
      if (this.target.has(doc._id) || this.starting.has(doc._id)) return false;
      const fence = p.current(doc.workspaceId);
      if (!fence) return false;
      // Under the current ownership the runtime is the authority (explicit starts and stops, engine
      // verdicts); the reconciler brings up what has not run under it yet (new owner, new epoch), and
      // what is wanted running under this fence yet runs nowhere here: a start that was lost (claimed,
      // awaitsStart), one left `stopped` (a restart whose start failed after its stop), one whose record
      // still shows it live (a stop whose write the database did not take). Only an engine's verdict
      // (`failed`, `logged_out`) stands: a failure time may fix is retried by the runtime, with its
      // backoff. A verdict that needs a person (`logged_out`, a QR not scanned, auth refused) is written
      // with desiredState `stopped`, so one wanted running was restarted since (a restart whose start
      // failed after it said so): started.
      if (!carriesFence(doc, fence)) return true;
      if (doc.status === "logged_out") return true;
      return doc.status !== "failed" || (doc.reason != null && NEEDS_PERSON.has(doc.reason));
    });
    if (toStart.length === 0) return;
    const startMany = this.target.startMany?.bind(this.target);
    if (startMany) {
      // One claim per workspace instead of one per account; the runtime opens them at the node's
      // start concurrency.
      for (const doc of toStart) this.starting.add(doc._id);
      try {
        await startMany(toStart);
      } catch (err) {
        this.logger.warn(`Starting ${toStart.length} account(s) failed: ${(err as Error).message}`);
        this.databaseDue = true;
      } finally {
        for (const doc of toStart) this.starting.delete(doc._id);
      }
      return;
    }
    // As many opens at a time as engine starts: more only queue up on the database.
    await inParallel(toStart, Math.max(1, this.cfg.startConcurrency), async (doc) => {
      this.starting.add(doc._id);
      try {
        await this.target.start(doc);
      } catch (err) {
        this.logger.debug(`Starting ${doc._id} failed: ${(err as Error).message}`);
      } finally {
        this.starting.delete(doc._id);
      }
    });
  }

  private async stopUnowned(): Promise<void> {
    const lost = new Set<string>();
    for (const s of this.target.local()) if (!this.placement.current(s.workspaceId)) lost.add(s.workspaceId);
    for (const ws of lost) await this.target.stopWorkspace(ws);
  }
}
