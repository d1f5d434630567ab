// Deletion of finished outbox rows past their retention (FerretDB has no TTL index). Every webhooks
// node prunes now and then, at a random phase so that nodes started together do not prune together;
// pruning is idempotent, so nodes pruning at once only repeat work. A prune runs beside the delivery
// loop's ticks (it reads every finished row past retention, which may take seconds): deliveries go on
// meanwhile.
import type { Logger } from "moleculer";
import type { OutboxRepo } from "../store/webhook-outbox-repo.ts";

/** How often a node prunes the outbox. */
const PRUNE_EVERY_MS = 10 * 60 * 1000;

export class OutboxPruning {
  private last = Date.now() - PRUNE_EVERY_MS * Math.random();
  private running: Promise<void> | null = null;

  /** @param retentionMs finished rows older than this are deleted; 0 keeps them. */
  constructor(
    private readonly outbox: Pick<OutboxRepo, "prune">,
    private readonly retentionMs: number,
    private readonly logger: Pick<Logger, "info" | "warn">,
  ) {}

  /** Starts a prune when it is time and none is under way; does not wait for it. */
  startIfDue(): void {
    if (this.running || this.retentionMs <= 0 || Date.now() - this.last < PRUNE_EVERY_MS) return;
    this.last = Date.now();
    this.running = this.prune()
      .catch((err) => this.logger.warn(`webhooks: pruning the outbox: ${(err as Error).message}`))
      .finally(() => (this.running = null));
  }

  /** Resolves once the prune under way, if any, ended. */
  async settled(): Promise<void> {
    await this.running;
  }

  private async prune(): Promise<void> {
    const deleted = await this.outbox.prune(new Date(Date.now() - this.retentionMs));
    if (deleted > 0) this.logger.info(`webhooks: pruned ${deleted} finished outbox rows`);
  }
}
