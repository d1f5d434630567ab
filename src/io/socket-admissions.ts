// Sockets a handshake admitted that have not connected yet, per workspace. The sockets quota counts
// them with the connected ones: handshakes that run at once each saw none of the others connected,
// and all passed a check of the connected sockets alone.

/** An admitted socket that has not connected within this long is not counted any more (its handshake
 * failed after admission). */
const ADMITTED_FOR_MS = 10_000;

export class SocketAdmissions {
  /** Socket id → its workspace and when it was admitted, oldest first. */
  private readonly pending = new Map<string, { workspaceId: string; at: number }>();

  constructor(private readonly windowMs = ADMITTED_FOR_MS) {}

  admitted(socketId: string, workspaceId: string): void {
    this.sweep();
    this.pending.set(socketId, { workspaceId, at: Date.now() });
  }

  /** The socket connected (now counted among the open ones) or never will. */
  settled(socketId: string): void {
    this.pending.delete(socketId);
  }

  /** Admitted sockets of the workspace still on their way. */
  count(workspaceId: string): number {
    this.sweep();
    let n = 0;
    for (const p of this.pending.values()) if (p.workspaceId === workspaceId) n++;
    return n;
  }

  private sweep(): void {
    const old = Date.now() - this.windowMs;
    for (const [id, p] of this.pending) {
      if (p.at >= old) break;
      this.pending.delete(id);
    }
  }
}
