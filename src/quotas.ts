// Per-workspace quotas (QUOTA_* defaults, an admin's overrides in the store): one tenant cannot create
// unlimited accounts, webhook endpoints or sockets, or flood the bus with socket calls. Read through a
// short cache, so a check costs no database read on the hot path; an override takes effect within it.
import { QuotaExceededError } from "./errors.ts";
import type { Quotas, QuotaName, QuotasRepo } from "./store/quotas-repo.ts";

/** How long a workspace's quotas are reused before they are read again. */
const CACHE_MS = 5000;

export class QuotaBook {
  private readonly cache = new Map<string, { quotas: Quotas; until: number }>();

  constructor(
    private readonly repo: QuotasRepo,
    private readonly defaults: Quotas,
  ) {}

  async of(workspaceId: string): Promise<Quotas> {
    const hit = this.cache.get(workspaceId);
    if (hit && hit.until > Date.now()) return hit.quotas;
    const quotas = { ...this.defaults, ...(await this.repo.overrides(workspaceId)) };
    if (this.cache.size >= 10000) this.cache.clear();
    this.cache.set(workspaceId, { quotas, until: Date.now() + CACHE_MS });
    return quotas;
  }

  /** Throws QuotaExceededError when one more would pass the workspace's `name` quota. */
  async admit(workspaceId: string, name: QuotaName, current: () => Promise<number> | number): Promise<void> {
    const limit = (await this.of(workspaceId))[name];
    if (limit > 0 && (await current()) >= limit) throw new QuotaExceededError(workspaceId, name, limit);
  }

  forget(workspaceId: string): void {
    this.cache.delete(workspaceId);
  }
}

/**
 * How many of something each workspace has, counted in the database at most every CACHE_MS and
 * adjusted by this node's own creates and deletes meanwhile: a count per create would scan the
 * collection on FerretDB (the hot path of a first QR). Other nodes' creates show within CACHE_MS, so a
 * workspace racing through several gateways may pass its quota by what they created in that window.
 */
export class CachedCounts {
  private readonly counts = new Map<string, { n: number; until: number }>();

  constructor(private readonly count: (workspaceId: string) => Promise<number>) {}

  async of(workspaceId: string): Promise<number> {
    const hit = this.counts.get(workspaceId);
    if (hit && hit.until > Date.now()) return hit.n;
    const n = await this.count(workspaceId);
    if (this.counts.size >= 10000) this.counts.clear();
    this.counts.set(workspaceId, { n, until: Date.now() + CACHE_MS });
    return n;
  }

  /** This node created (+1) or deleted (-1) one. */
  add(workspaceId: string, delta: number): void {
    const hit = this.counts.get(workspaceId);
    if (hit) hit.n = Math.max(0, hit.n + delta);
  }
}
