// Deletion of finished outbox rows past their retention (FerretDB has no TTL index). Every webhooks
// node prunes now and then, at a random phase so that nodes started together do not prune together;
// pruning is idempotent, so nodes pruning at once only repeat work.
import type { Logger } from "moleculer";
import type { OutboxRepo } from "../store/webhook-outbox-repo.ts";

/** How often a node prunes the outbox. */
const PRUNE_EVERY_MS = 10 * 60 * 1000;

export class OutboxPruning {
  private last = Date.now() - PRUNE_EVERY_MS * Math.random();

  /** @param retentionMs finished rows older than this are deleted; 0 keeps them. */
  constructor(
    private readonly outbox: Pick<OutboxRepo, "prune">,
    private readonly retentionMs: number,
    private readonly logger: Pick<Logger, "info">,
  ) {}

  /** Prunes when it is time. */
  async ifDue(): Promise<void> {
    if (this.retentionMs <= 0 || Date.now() - this.last < PRUNE_EVERY_MS) return;
    this.last = Date.now();
    const deleted = await this.outbox.prune(new Date(Date.now() - this.retentionMs));
    if (deleted > 0) this.logger.info(`webhooks: pruned ${deleted} finished outbox rows`);
  }
}
