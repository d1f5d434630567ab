// Wiring of the placement layer into every broker (moleculer.config.ts): the WorkspaceShard strategy
// registered under its name (the strategy runs on the calling node, so every process needs it), and a
// middleware that gives each broker its placement layer before its services start.
import { Strategies, type Middleware, type ServiceBroker } from "moleculer";
import type { Config } from "../config.ts";
import { attachPlacement, ClusterPlacement, detachPlacement } from "./kv.ts";
import { WORKSPACE_SHARD, WorkspaceShardStrategy } from "./strategy.ts";

let registered = false;

/** Registers WorkspaceShard in Moleculer's strategy registry (process-wide, idempotent). */
export function registerWorkspaceShard(): void {
  if (registered) return;
  // The typings expect an instance; the registry stores (and later instantiates) the class.
  Strategies.register(
    WORKSPACE_SHARD,
    WorkspaceShardStrategy as unknown as Parameters<typeof Strategies.register>[1],
  );
  registered = true;
}

/** Starts the broker's placement layer (NATS KV + mirror) before its services, closes it after. */
export function placementMiddleware(cfg: Config): Middleware {
  return {
    name: "Placement",
    async starting(broker: ServiceBroker) {
      if (!broker.transit) return;
      attachPlacement(broker, await ClusterPlacement.connect(cfg, broker.logger));
    },
    async stopped(broker: ServiceBroker) {
      await detachPlacement(broker)?.close();
    },
  } as Middleware;
}
