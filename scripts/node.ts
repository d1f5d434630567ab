// `npm run node`: one Switchboard node configured by the environment alone (SERVICES, NATS_URL,
// MONGO_URL, …; see src/config.ts). This is how production hosts, docker-compose and `npm start` run
// a node. SIGINT / SIGTERM stop the broker gracefully (services drain in their `stopped` handlers),
// then the process exits.
import { loadConfig } from "../src/config.ts";
import { createNodeBroker, NODE_STARTED_MARK } from "../src/node.ts";
import { startHealthServer } from "../src/health-port.ts";
import { redactUrl } from "../src/redact.ts";

const log = (msg: string) => console.log(`[node] ${msg}`);

async function main(): Promise<void> {
  const startedAt = Date.now();
  const cfg = loadConfig();
  log(
    `starting ${cfg.nodeId} (pid ${process.pid}): services ${cfg.services.join(",")}; ` +
      `NATS ${redactUrl(cfg.natsUrl)}; MongoDB ${redactUrl(cfg.mongoUrl)}; namespace ${cfg.namespace}`,
  );
  // The broker's own signal handlers would exit without our logging; this script owns the process.
  const broker = await createNodeBroker(cfg, { skipProcessEventRegistration: true });

  let stopping: Promise<void> | undefined;
  const stop = (why: string) => {
    if (stopping) {
      log(`${why} again: already stopping`);
      return;
    }
    log(`${why}: stopping ${cfg.nodeId}`);
    const t0 = Date.now();
    stopping = broker
      .stop()
      .then(() => {
        log(`stopped in ${Date.now() - t0} ms`);
        process.exit(0);
      })
      .catch((err: unknown) => {
        console.error(`[node] stop failed: ${err instanceof Error ? err.stack : String(err)}`);
        process.exit(1);
      });
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGHUP", () => stop("SIGHUP"));
  // Under `npm start` the parent holds our stdin open: if it dies without stopping us, stdin closes
  // and the node stops rather than lingering as an orphan.
  if (process.env.SWITCHBOARD_EXIT_WITH_PARENT === "1") {
    process.stdin.on("end", () => stop("parent gone"));
    process.stdin.resume();
  }

  // Before the broker joins the cluster: a port already taken fails the start before this node has
  // taken a lease or workspaces it would then abandon.
  if (cfg.healthPort > 0) {
    await startHealthServer(broker, cfg.healthPort);
    log(`liveness on :${cfg.healthPort}/health/live (HEALTH_PORT)`);
  }
  await broker.start();
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
