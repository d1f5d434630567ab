// A tiny liveness endpoint for nodes without the gateway (workers): container healthchecks need
// something to ask, and the REST API's /health/live only exists where `api` runs. HEALTH_PORT=0: none.
import { createServer, type Server } from "node:http";
import type { ServiceBroker } from "moleculer";

/** Live when the broker has started and, if it has a transporter, is connected to NATS. */
export function isLive(broker: ServiceBroker): boolean {
  return broker.started && (!broker.transit || broker.transit.connected);
}

/** Listens on `host:port` and answers GET /health/live with 200 or 503 (503 until the broker has
 * started, so it can listen before the node joins the cluster); anything else 404. */
export async function startHealthServer(
  broker: ServiceBroker,
  port: number,
  host = "0.0.0.0",
): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== "GET" || req.url !== "/health/live") {
      res.writeHead(404).end();
      return;
    }
    const live = isLive(broker);
    res.writeHead(live ? 200 : 503, { "content-type": "application/json" });
    res.end(JSON.stringify({ live, nodeID: broker.nodeID }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: Error) =>
      reject(new Error(`HEALTH_PORT ${port}: cannot listen on ${host}:${port} (${err.message})`)),
    );
    server.listen(port, host, () => resolve());
  });
  return server;
}
