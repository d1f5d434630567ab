// Endpoint documents as a delivery loop reads them: by id, kept at most `maxAgeMs` (a change made on
// another node shows within that time; one made through this node is forgotten at once).
import type { EndpointsRepo } from "../store/webhook-endpoints-repo.ts";
import type { EndpointDoc } from "./types.ts";

export class EndpointSettings {
  private readonly cache = new Map<string, { doc: EndpointDoc | null; at: number }>();

  constructor(
    private readonly repo: Pick<EndpointsRepo, "findById">,
    private readonly maxAgeMs: number,
  ) {}

  /** The endpoint, or null when it was removed. */
  async get(endpointId: string): Promise<EndpointDoc | null> {
    const cached = this.cache.get(endpointId);
    if (cached && Date.now() - cached.at < this.maxAgeMs) return cached.doc;
    const doc = await this.repo.findById(endpointId);
    this.cache.set(endpointId, { doc, at: Date.now() });
    return doc;
  }

  forget(endpointId: string): void {
    this.cache.delete(endpointId);
  }
}
