// One Switchboard node in a child process of a bench (configuration from the environment, as in
// production). Prints `ready <nodeID>` once its broker has started; stops on SIGTERM, and when its
// stdin closes (the bench died: no node outlives it).
import { loadConfig } from "../../src/config.ts";
import { createNodeBroker } from "../../src/node.ts";

const cfg = loadConfig();
const broker = await createNodeBroker(cfg);
await broker.start();
process.stdout.write(`ready ${broker.nodeID}\n`);
const stop = () => {
  void broker.stop().finally(() => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("close", stop);
process.stdin.resume();
