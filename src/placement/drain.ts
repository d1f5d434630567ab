// The hand-offs of a drain: every workspace a node holds to its next owner, four at a time. One that
// fails (NATS or the database away for it) is reported and the others go on; an `undrain` (or a newer
// drain) stops the ones not begun yet.
import { nextOwner, type PlacementNode } from "./hrw.ts";

export interface DrainReport {
  nodeId: string;
  /** Workspaces handed to another node. */
  moved: number;
  /** Workspaces that stayed: nowhere to go, no longer this node's, or the drain was ended. */
  kept: number;
  /** Hand-offs that failed, each with its cause (the workspace stayed here). */
  failed: { workspaceId: string; reason: string }[];
  /** Sessions still running on the node. */
  sessions: number;
}

export interface DrainPlan {
  nodeId: string;
  workspaces: string[];
  /** The other live, non-draining workers, and their loads (updated as workspaces move). */
  targets: PlacementNode[];
  loads: Map<string, number>;
  loadFactor: number;
  handOff(workspaceId: string, target: string): Promise<boolean>;
  /** False once the drain was ended (undrain): hand-offs not begun are left. */
  goingOn(): boolean;
}

export async function runDrain(plan: DrainPlan): Promise<Omit<DrainReport, "sessions">> {
  const queue = [...plan.workspaces];
  let moved = 0;
  const failed: DrainReport["failed"] = [];
  const worker = async () => {
    for (let ws = queue.shift(); ws !== undefined && plan.goingOn(); ws = queue.shift()) {
      const target = nextOwner(ws, plan.nodeId, plan.targets, plan.loads, plan.loadFactor);
      if (!target) continue;
      try {
        if (!(await plan.handOff(ws, target))) continue;
        moved++;
        plan.loads.set(target, (plan.loads.get(target) ?? 0) + 1);
      } catch (err) {
        failed.push({ workspaceId: ws, reason: err instanceof Error ? err.message : String(err) });
      }
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  return { nodeId: plan.nodeId, moved, kept: plan.workspaces.length - moved - failed.length, failed };
}
