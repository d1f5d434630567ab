// `npm run repl`: the operator's console. A broker with no services joins the cluster named by the
// environment (NATS_URL, NAMESPACE; see moleculer.config.ts) and opens moleculer-repl with the
// Switchboard commands of src/repl/commands.ts (`cluster`, `accounts`, `placement`, `qr`, `drain`,
// `rebalance`) next to the built-in ones (`nodes`, `services`, `call`, …).
import { ServiceBroker } from "moleculer";
import { brokerOptions } from "../moleculer.config.ts";
import { loadConfig } from "../src/config.ts";
import { replCommands } from "../src/repl/commands.ts";
import { consoleNodeId } from "../src/repl/node-id.ts";
import { CLUSTER_ACTIONS } from "../src/placement/actions.ts";

const base = loadConfig();
const cfg = {
  ...base,
  // A console is not a worker: it hosts nothing and must never be picked as an owner.
  services: [],
  // Not NODE_ID: in a node's container that is the node's own id (src/repl/node-id.ts).
  nodeId: consoleNodeId(),
  // Keep the console readable: only warnings unless LOG_LEVEL asks for more.
  logLevel: process.env.LOG_LEVEL ? base.logLevel : "warn",
};

const broker = new ServiceBroker(
  brokerOptions(cfg, {
    replOptions: { delimiter: "switchboard $", customCommands: replCommands() as never },
  }),
);

await broker.start();
// Remote services become callable about a second after joining; wait for them (briefly: the console
// must also open on a cluster that is half down, to look at what is left).
const needed = [CLUSTER_ACTIONS.nodes.split(".")[0], "accounts"];
await broker
  .waitForServices(needed, 5000)
  .catch(() => broker.logger.warn(`${needed.join(" or ")} service not found yet; commands may fail`));
broker.repl();
