// Names of the `cluster` service's actions (services/cluster.service.ts), which the gateway routes
//   GET  /api/v1/cluster/nodes                    → CLUSTER_ACTIONS.nodes       {}                → {items: NodeView[]}
//   GET  /api/v1/cluster/placement/:workspaceId   → CLUSTER_ACTIONS.placement   {workspaceId}     → {workspaceId, node, epoch, since}
//   POST /api/v1/cluster/nodes/:nodeId/drain      → CLUSTER_ACTIONS.drain       {nodeId}          → {nodeId, moved, kept, sessions}
//   POST /api/v1/cluster/nodes/:nodeId/undrain    → CLUSTER_ACTIONS.undrain     {nodeId}          → {nodeId, draining: false}
//   POST /api/v1/cluster/rebalance                → CLUSTER_ACTIONS.rebalance   {max?}            → {moved: [...]}
// and the REPL calls. Every worker runs the service. The gateway and the REPL send a drain straight to
// the node it drains (so it carries their admin signature, src/admin-signature.ts); a drain that lands
// elsewhere is forwarded, which only a node holding the admin key can sign.
export const CLUSTER_ACTIONS = {
  nodes: "cluster.nodes",
  placement: "cluster.placement",
  drain: "cluster.drain",
  undrain: "cluster.undrain",
  rebalance: "cluster.rebalance",
} as const;

export type ClusterAction = (typeof CLUSTER_ACTIONS)[keyof typeof CLUSTER_ACTIONS];
