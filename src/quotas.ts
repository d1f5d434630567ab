// Per-workspace quotas (QUOTA_* defaults, an admin's overrides in the store): one tenant cannot create
// unlimited accounts, webhook endpoints or sockets, or flood the bus with socket calls. Read through a
// short cache, so a check costs no database read on the hot path; an override takes effect within it.
// Accounts and webhook endpoints are counted by a tally kept as they are created and deleted
// (QuotaTally), not per create.
import { BoundedMap } from "./bounded-map.ts";
import { QuotaExceededError } from "./errors.ts";
import { KeyedSerial } from "./keyed-serial.ts";
import { TtlCache } from "./ttl-cache.ts";
import type { Quotas, QuotaName, QuotasRepo } from "./store/quotas-repo.ts";

/** How long a workspace's quotas are reused before they are read again. */
const CACHE_MS = 5000;

/** Workspaces a tally remembers (the least recently counted are forgotten, and counted again). */
const WORKSPACES_KEPT = 10_000;

export class QuotaBook {
  private readonly cache = new TtlCache<string, Quotas>(CACHE_MS);

  constructor(
    private readonly repo: QuotasRepo,
    private readonly defaults: Quotas,
  ) {}

  of(workspaceId: string): Promise<Quotas> {
    return this.cache.get(workspaceId, async (id) => ({
      ...this.defaults,
      ...(await this.repo.overrides(id)),
    }));
  }

  /** Throws QuotaExceededError when one more would pass the workspace's `name` quota; otherwise runs
   * `counted`. A `current` that answers at once is read, checked and counted with no await in between,
   * so admissions that reach the check together see each other. */
  async admit(
    workspaceId: string,
    name: QuotaName,
    current: () => Promise<number> | number,
    counted?: () => void,
  ): Promise<void> {
    const limit = (await this.of(workspaceId))[name];
    const now = current();
    const n = typeof now === "number" ? now : await now;
    if (limit > 0 && n >= limit) throw new QuotaExceededError(workspaceId, name, limit);
    counted?.();
  }

  forget(workspaceId: string): void {
    this.cache.forget(workspaceId);
  }
}

/** What QuotaTally needs of the stored tallies (TallyRepo, EndpointTallies; unit tests use a Map). */
export interface TallyStore {
  /** The count at version `seq` of the workspace's tally, or null when there is no such version. */
  read(workspaceId: string, seq: number): Promise<number | null>;
  /** Writes version `seq` with count `n`, made by a change of `delta` (+1 a create, -1 a delete, 0 a
   * count) of `ref` (the account or endpoint counted, when known); false when that version exists
   * already (another writer took it). */
  write(workspaceId: string, seq: number, n: number, delta: number, ref?: string): Promise<boolean>;
  /** How many versions of the workspace written since `since` are creates (delta +1). */
  createsSince(workspaceId: string, since: Date): Promise<number>;
  /** The sum of the changes of the workspace's versions written for `ref` since `since` (a create
   * counted in and not out again: 1). */
  changesOfSince(workspaceId: string, ref: string, since: Date): Promise<number>;
}

/** A tally version as this node last knew it (version 0, count 0: none written yet). */
interface Known {
  seq: number;
  n: number;
}

/** A create counted longer ago than this has recorded its account (or endpoint) or never will
 * (REQUEST_TIMEOUT_MS, 15 s by default, bounds each call it makes). */
export const CREATE_SETTLES_MS = 60_000;

/**
 * How many of what a quota counts (accounts, webhook endpoints) each workspace has, kept in the store as
 * it changes instead of counted per create (a count is a collection scan on FerretDB, on the hot path of
 * a first QR); below, "accounts" stands for either. Every change writes the
 * next version of the workspace's tally, which only one writer can do (TallyStore.write), so creates
 * racing through any number of gateways never pass the quota, and a delete counts one out. The last
 * version is looked up by `_id` (probing forward from what this node knew) only when another node
 * moved it on; a new workspace costs one write.
 *
 * A create whose account was not recorded is counted out again (`release`). One whose gateway died in
 * between leaves the tally one high; so at the limit the accounts themselves are counted (at most
 * every CACHE_MS per workspace), plus the creates counted in the last CREATE_SETTLES_MS (they may be
 * in flight), and the tally goes on from that when it is lower.
 */
export class QuotaTally {
  private readonly known = new BoundedMap<string, Known>(WORKSPACES_KEPT);
  /** When the accounts were last counted and found at the limit, per workspace. */
  private readonly fullAt = new BoundedMap<string, number>(WORKSPACES_KEPT);
  /** One change per workspace at a time here: this node's creates do not race each other. */
  private readonly serial = new KeyedSerial();

  /**
   * @param store the versions
   * @param countAccounts counts the workspace's accounts (a scan): only at the limit
   * @param quota the quota it is kept for, named by its QuotaExceededError
   */
  constructor(
    private readonly store: TallyStore,
    private readonly countAccounts: (workspaceId: string) => Promise<number>,
    private readonly quota: QuotaName,
  ) {}

  /**
   * Counts one more account, or throws QuotaExceededError when that passes `limit` (0: unlimited).
   * Follow with `release` when the account was not recorded. A limit given as a function is read only
   * when it can matter: a workspace's first account is within any quota (a limit is 0 or at least 1),
   * so a new workspace's create reads no quota. Resolves true when this is the workspace's first
   * account ever counted (its tally's first version).
   */
  async reserve(
    workspaceId: string,
    limit: number | (() => Promise<number>),
    ref?: string,
  ): Promise<boolean> {
    return (await this.serial.run(workspaceId, () => this.change(workspaceId, +1, limit, ref))) === 1;
  }

  /** The reserved account (`ref`, as reserved) was not recorded: counted out again. */
  async release(workspaceId: string, ref?: string): Promise<void> {
    await this.serial.run(workspaceId, () => this.change(workspaceId, -1, 0, ref));
  }

  /** An account of the workspace was deleted. */
  async removed(workspaceId: string): Promise<void> {
    await this.serial.run(workspaceId, () => this.change(workspaceId, -1));
  }

  /** Whether a create of `ref` (reserved with it), on any node, may still be recording it: counted in
   * within CREATE_SETTLES_MS and not released (a repeat refused by the first's node releases its own
   * place: on balance). What a repeat of an idempotent create refused at the quota asks before it
   * answers 429: the last place may be its own key's. */
  async mayBeRecording(workspaceId: string, ref: string): Promise<boolean> {
    return (await this.store.changesOfSince(workspaceId, ref, new Date(Date.now() - CREATE_SETTLES_MS))) > 0;
  }

  private async change(
    workspaceId: string,
    delta: number,
    limit: number | (() => Promise<number>) = 0,
    ref?: string,
  ): Promise<number> {
    // Unknown here: most likely a new workspace, whose first version is tried at once.
    let at = this.known.get(workspaceId) ?? { seq: 0, n: 0 };
    for (;;) {
      let n = Math.max(0, at.n + delta);
      if (delta > 0 && n > 1) {
        const max = typeof limit === "number" ? limit : await limit();
        if (max > 0 && n > max) n = (await this.recount(workspaceId, max)) + delta;
      }
      if (await this.store.write(workspaceId, at.seq + 1, n, delta, ref)) {
        this.remember(workspaceId, { seq: at.seq + 1, n });
        return at.seq + 1;
      }
      // Another writer moved the tally on: from its last version.
      at = await probeLast(this.store, workspaceId, at.seq + 1);
    }
  }

  /** At the limit: the accounts counted, plus the creates that may still be recording theirs. Returns
   * that count when it is below the limit; throws otherwise. */
  private async recount(workspaceId: string, limit: number): Promise<number> {
    const full = this.fullAt.get(workspaceId);
    if (full === undefined || Date.now() - full >= CACHE_MS) {
      const [accounts, recent] = await Promise.all([
        this.countAccounts(workspaceId),
        this.store.createsSince(workspaceId, new Date(Date.now() - CREATE_SETTLES_MS)),
      ]);
      if (accounts + recent < limit) return accounts + recent;
      this.fullAt.set(workspaceId, Date.now());
    }
    throw new QuotaExceededError(workspaceId, this.quota, limit);
  }

  private remember(workspaceId: string, at: Known): void {
    this.known.set(workspaceId, at);
  }
}

/** The accounts quota's tally. */
export class AccountTally extends QuotaTally {
  constructor(store: TallyStore, countAccounts: (workspaceId: string) => Promise<number>) {
    super(store, countAccounts, "accounts");
  }
}

/**
 * The last version of a workspace's tally at or after `from` (a version known to exist, or 0), by
 * lookups of single versions: exponential steps, then a binary search. Versions are written one after
 * another (each by a writer that read the one before), so they have no gaps.
 */
export async function probeLast(store: TallyStore, workspaceId: string, from: number): Promise<Known> {
  let lo: Known = { seq: 0, n: 0 };
  if (from > 0) {
    const n = await store.read(workspaceId, from);
    // Not there (only when `from` was a guess): start over from the beginning.
    if (n === null) return probeLast(store, workspaceId, 0);
    lo = { seq: from, n };
  }
  let step = 1;
  let hi = lo.seq + 1;
  for (let n = await store.read(workspaceId, hi); n !== null; n = await store.read(workspaceId, hi)) {
    lo = { seq: hi, n };
    step *= 2;
    hi = lo.seq + step;
  }
  while (hi - lo.seq > 1) {
    const mid = Math.floor((lo.seq + hi) / 2);
    const n = await store.read(workspaceId, mid);
    if (n === null) hi = mid;
    else lo = { seq: mid, n };
  }
  return lo;
}
