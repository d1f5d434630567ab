// `npm run node`: one Switchboard node configured by the environment alone (SERVICES, NATS_URL,
// MONGO_URL, …; see src/config.ts). This is how production hosts, docker-compose and `npm start` run
// a node. SIGINT / SIGTERM stop the broker gracefully (services drain in their `stopped` handlers),
// then the process exits; a second one exits at once (src/node-stop.ts).
import type { ServiceBroker } from "moleculer";
import { loadConfig } from "../src/config.ts";
import { createNodeBroker, NODE_STARTED_MARK } from "../src/node.ts";
import { startHealthServer } from "../src/health-port.ts";
import { redactUrl } from "../src/redact.ts";
import { nodeStopper } from "../src/node-stop.ts";

const log = (msg: string) => console.log(`[node] ${msg}`);

async function main(): Promise<void> {
  const startedAt = Date.now();
  const cfg = loadConfig();
  let broker: ServiceBroker | undefined;
  let starting: Promise<void> | undefined;
  const stop = nodeStopper({
    nodeId: cfg.nodeId,
    stopBroker: async () => broker?.stop(),
    starting: () => starting,
    log,
    exit: (code) => process.exit(code),
  });
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGHUP", () => stop("SIGHUP"));
  // Under `npm start` the parent holds our stdin open: if it dies without stopping us, stdin closes
  // and the node stops rather than lingering as an orphan.
  if (process.env.SWITCHBOARD_EXIT_WITH_PARENT === "1") {
    process.stdin.on("end", () => stop("parent gone"));
    process.stdin.resume();
  }

  log(
    `starting ${cfg.nodeId} (pid ${process.pid}): services ${cfg.services.join(",")}; ` +
      `NATS ${redactUrl(cfg.natsUrl)}; MongoDB ${redactUrl(cfg.mongoUrl)}; namespace ${cfg.namespace}`,
  );
  starting = (async () => {
    // The broker's own signal handlers would exit without our logging; this script owns the process.
    const b = (broker = await createNodeBroker(cfg, { skipProcessEventRegistration: true }));
    // Before the broker joins the cluster: a port already taken fails the start before this node has
    // taken a lease or workspaces it would then abandon.
    if (cfg.healthPort > 0) {
      await startHealthServer(b, cfg.healthPort);
      log(`liveness on :${cfg.healthPort}/health/live (HEALTH_PORT)`);
    }
    await b.start();
  })();
  await starting;
  starting = undefined;
  log(
    `${NODE_STARTED_MARK} ${cfg.nodeId} pid ${process.pid} services ${cfg.services.join(",")} ` +
      `in ${Date.now() - startedAt} ms`,
  );
}

main().catch((err: unknown) => {
  console.error(`[node] failed to start: ${err instanceof Error ? err.message : String(err)}`);
  if (err instanceof Error && process.env.LOG_LEVEL === "debug") console.error(err.stack);
  process.exit(1);
});
