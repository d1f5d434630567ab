// The delivery attempts a node has in flight: at most one per (endpoint, account) queue, keyed by the
// queue, and counted per workspace so that one tenant's slow receivers cannot take every slot.
import { queueKey } from "../store/webhook-outbox-repo.ts";

export class AttemptsInFlight {
  private readonly byQueue = new Map<string, Promise<void>>();
  private readonly byWorkspace = new Map<string, number>();

  get size(): number {
    return this.byQueue.size;
  }

  /** Whether the queue (by its key) has an attempt in flight. */
  has(key: string): boolean {
    return this.byQueue.has(key);
  }

  /** Attempts in flight for the workspace. */
  of(workspaceId: string): number {
    return this.byWorkspace.get(workspaceId) ?? 0;
  }

  /** Whether any queue of the endpoint has an attempt in flight. */
  hasEndpoint(endpointId: string): boolean {
    const prefix = queueKey(endpointId, "");
    for (const key of this.byQueue.keys()) if (key.startsWith(prefix)) return true;
    return false;
  }

  /** Counts `run` until it settles (it must not reject). */
  add(key: string, workspaceId: string, run: Promise<void>): void {
    this.byQueue.set(key, run);
    this.byWorkspace.set(workspaceId, this.of(workspaceId) + 1);
    void run.finally(() => {
      this.byQueue.delete(key);
      const left = this.of(workspaceId) - 1;
      if (left > 0) this.byWorkspace.set(workspaceId, left);
      else this.byWorkspace.delete(workspaceId);
    });
  }

  /** Resolves once every attempt now in flight settled. */
  async settled(): Promise<void> {
    await Promise.allSettled(this.byQueue.values());
  }
}
