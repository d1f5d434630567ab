// `npm run node` (scripts/node.ts) as a process on real NATS and FerretDB, signalled while it starts: a
// stop waits for the start to finish and then stops gracefully (its lease removed, not left to
// expire); a second signal exits at once.
import { strict as assert } from "node:assert";
import { connect, type NatsConnection } from "nats";
import { bucketName } from "../../src/config.ts";
import { NODE_STARTED_MARK } from "../../src/node.ts";
import { ProcessCluster } from "../support/process-cluster.ts";
import { waitFor } from "../support/wait.ts";

describe("npm run node: stop signals while the node starts", function () {
  this.timeout(90000);
  let pc: ProcessCluster;
  let nc: NatsConnection | undefined;
  before(async () => {
    pc = new ProcessCluster();
    await pc.startServers();
  });
  after(async () => {
    await nc?.close();
    await pc?.stop();
  });

  it("SIGTERM while starting: the start finishes, then a graceful stop (lease removed), exit 0", async () => {
    const w = await pc.startWorker("sig1", {}, "[node] starting sig1 ");
    w.child.kill("SIGTERM");
    assert.equal(await w.exited, 0, w.output.join(""));
    const out = w.output.join("");
    assert.match(out, /SIGTERM: stopping sig1 once its start has finished/);
    assert.ok(out.indexOf(NODE_STARTED_MARK) < out.indexOf("stopped in"), out);
    nc = await connect({ servers: pc.natsUrl });
    const nodes = await nc.jetstream().views.kv(bucketName(pc.config("sig1"), "nodes"));
    const lease = await nodes.get("sig1");
    assert.ok(!lease || lease.operation !== "PUT", "the lease was removed on the way out");
  });

  it("a second SIGTERM exits 1 at once, saying so", async () => {
    const w = await pc.startWorker("sig2", {}, "[node] starting sig2 ");
    w.child.kill("SIGTERM");
    await waitFor(() => w.output.join("").includes("SIGTERM: stopping sig2"), {
      what: "sig2 to start stopping",
      timeoutMs: 20000,
      intervalMs: 5,
    });
    w.child.kill("SIGTERM");
    assert.equal(await w.exited, 1, w.output.join(""));
    assert.match(w.output.join(""), /SIGTERM again: exiting now without finishing the stop/);
  });
});
