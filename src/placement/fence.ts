// Who may run (and write) a workspace's sessions. The session runtime asks before every start and
// stamps every write with the answer (`{node, epoch}`), so a stale owner's writes match nothing.
// WorkerOwnership (worker-ownership.ts) is the implementation: JetStream KV claims and a liveness lease.
import { WorkspaceUnavailableError } from "../errors.ts";
import type { OwnerStamp } from "../store/stamp.ts";

/** The fence of a workspace: its owner node and the placement epoch of that ownership. */
export type Fence = OwnerStamp;

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
  /** Whether a node holds a live lease (a node that is not live was lost, or stopped). */
  isLive?(nodeId: string): boolean;
  /** The fence of a workspace this node is handing off (drain, rebalance): its sessions are stopping
   * and nothing new starts (`current` is null), but the record is still this node's until the
   * hand-off's compare-and-set, so what they received may still be relayed. */
  handingOff?(workspaceId: string): Fence | null;
}

/** Before the node's placement has started: no workspace is this node's yet. */
export const NOT_PLACED: Ownership = {
  current: () => null,
  acquire: async (workspaceId) => {
    throw new WorkspaceUnavailableError(workspaceId, "this node's placement has not started yet");
  },
};
