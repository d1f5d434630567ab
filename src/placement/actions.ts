// Names of the cluster-facing actions of the placement layer. The gateway routes
//   GET  /api/v1/cluster/nodes                    → CLUSTER_ACTIONS.nodes       {}                → {items: NodeView[]}
//   GET  /api/v1/cluster/placement/:workspaceId   → CLUSTER_ACTIONS.placement   {workspaceId}     → {workspaceId, node, epoch, since}
//   POST /api/v1/cluster/nodes/:nodeId/drain      → CLUSTER_ACTIONS.drain       {nodeId}          → {nodeId, moved, sessions}
//   POST /api/v1/cluster/rebalance                → CLUSTER_ACTIONS.rebalance   {max?}            → {moved: [...]}
// to these names, and the REPL calls them too. They are actions of the `session` service (every worker
// runs them, from mixins/placement.mixin.ts); drain is forwarded to the node being drained by the
// service itself, so callers need no nodeID.
export const CLUSTER_ACTIONS = {
  nodes: "session.nodes",
  placement: "session.placement",
  drain: "session.drain",
  rebalance: "session.rebalance",
} as const;

export type ClusterAction = (typeof CLUSTER_ACTIONS)[keyof typeof CLUSTER_ACTIONS];
