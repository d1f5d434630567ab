// Who may run (and write) a workspace's sessions. The session runtime asks before every start and
// stamps every status write with the answer (`{node, epoch}`), so a stale owner's writes match nothing.
// PLACEMENT provides the real implementation (JetStream KV claims + liveness lease); SingleNodeOwnership
// serves a single worker, and several workers until placement is wired in.

/** The fence of a workspace: its owner node and the placement epoch of that ownership. */
export interface Fence {
  node: string;
  epoch: number;
}

/** `x` (a document, a fence) is stamped with exactly `fence`. */
export function carriesFence(x: { node?: string | null; epoch?: number | null }, fence: Fence): boolean {
  return x.node === fence.node && x.epoch === fence.epoch;
}

export interface Ownership {
  /** This node's fence for the workspace, or null when this node must not run or write it. Synchronous. */
  current(workspaceId: string): Fence | null;
  /** Makes this node the owner (claiming an unplaced workspace); throws WorkspaceUnavailableError or
   * NotOwnerError when it cannot. */
  acquire(workspaceId: string): Promise<Fence>;
}

/** Every workspace is this node's at epoch 1. Per-account fencing in the store still keeps an account
 * that another node claimed first away from this one. */
export class SingleNodeOwnership implements Ownership {
  private readonly fence: Fence;
  constructor(node: string, epoch = 1) {
    this.fence = { node, epoch };
  }
  current(): Fence {
    return this.fence;
  }
  async acquire(): Promise<Fence> {
    return this.fence;
  }
}
