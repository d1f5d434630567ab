// The console's own node id. A node's NODE_ID names that node: a console opened in its container (e.g.
// `docker compose exec gateway npm run repl`) that took it would join as a second `gateway`, and
// Moleculer stops a node (process.exit) that hears another announce its own id.
import { hostname } from "node:os";

/** REPL_NODE_ID when set, else `repl-<hostname>-<pid>`; never NODE_ID. */
export function consoleNodeId(env: NodeJS.ProcessEnv = process.env): string {
  const chosen = env.REPL_NODE_ID?.trim();
  return chosen || `repl-${hostname()}-${process.pid}`;
}
