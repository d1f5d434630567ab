// A webhooks node that crashes (SIGKILL: no graceful stop, its lease is not released) while the receiver
// is down: the outbox keeps the event, another webhooks node takes the endpoint over once the crashed
// node's lease expired, and the receiver gets the event when it is back.
import { strict as assert } from "node:assert";
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import type { ServiceBroker, ServiceSchema } from "moleculer";
import WebhooksSchema from "../../../services/webhooks.service.ts";
import type { AccountStatusEvent } from "../../../src/accounts/types.ts";
import { ROOT } from "../../../src/dev/servers.ts";
import { NODE_STARTED_MARK } from "../../../src/node.ts";
import { eventIdOf } from "../../../src/webhooks/events.ts";
import { HEADER_ATTEMPT, HEADER_EVENT_ID } from "../../../src/webhooks/http-delivery.ts";
import type { DeliveryView, EndpointView } from "../../../src/webhooks/types.ts";
import { TestCluster } from "../../support/cluster.ts";
import { testEnv } from "../../support/env.ts";
import { waitFor } from "../../support/wait.ts";
import { WebhookReceiver } from "./receiver.ts";

const WebhooksService = WebhooksSchema as unknown as ServiceSchema;
const LEASE_TTL_MS = 1500;
const FAST = {
  webhookPollMs: 50,
  webhookBackoffBaseMs: 40,
  webhookBackoffMaxMs: 200,
  webhookTimeoutMs: 500,
  webhookLeaseTtlMs: LEASE_TTL_MS,
  webhookMaxAttempts: 1000,
};

describe("webhooks: a webhooks node crashing mid-retry", function () {
  this.timeout(60000);
  let cluster: TestCluster;
  let receiver: WebhookReceiver;
  let child: ChildProcess | undefined;

  beforeEach(async () => {
    receiver = await new WebhookReceiver().start();
    cluster = new TestCluster(FAST, "whcrash");
  });
  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await cluster.stop();
    await receiver.stop();
  });

  /** A real webhooks node in a process of its own (scripts/node.ts), configured by environment only. */
  async function spawnWebhooksNode(nodeId: string): Promise<ChildProcess> {
    const env = {
      ...process.env,
      NODE_ID: nodeId,
      NAMESPACE: cluster.namespace,
      NATS_URL: testEnv.natsUrl,
      MONGO_URL: cluster.mongoUrl,
      SERVICES: "webhooks",
      LOG_LEVEL: "warn",
      HEARTBEAT_INTERVAL_MS: "1000",
      HEARTBEAT_TIMEOUT_MS: "3000",
      WEBHOOK_POLL_MS: String(FAST.webhookPollMs),
      WEBHOOK_BACKOFF_BASE_MS: String(FAST.webhookBackoffBaseMs),
      WEBHOOK_BACKOFF_MAX_MS: String(FAST.webhookBackoffMaxMs),
      WEBHOOK_TIMEOUT_MS: String(FAST.webhookTimeoutMs),
      WEBHOOK_LEASE_TTL_MS: String(FAST.webhookLeaseTtlMs),
      WEBHOOK_MAX_ATTEMPTS: String(FAST.webhookMaxAttempts),
    };
    const proc = spawn(process.execPath, ["--import", "tsx", join(ROOT, "scripts", "node.ts")], {
      cwd: ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    proc.stdout!.on("data", (b: Buffer) => (out += b.toString()));
    proc.stderr!.on("data", (b: Buffer) => (out += b.toString()));
    await waitFor(() => out.includes(NODE_STARTED_MARK) || proc.exitCode !== null, {
      timeoutMs: 30000,
      what: `${nodeId} to start`,
    });
    assert.equal(proc.exitCode, null, `webhooks node exited:\n${out}`);
    return proc;
  }

  it("the event is delivered by another node after the crashed node's lease expires", async () => {
    const pub: ServiceBroker = cluster.node("pub", []);
    await cluster.start();
    child = await spawnWebhooksNode("wh-crash");
    await pub.waitForServices(["webhooks"], 15000);

    const endpoint: EndpointView = await pub.call("webhooks.create", {
      workspaceId: "ws1",
      url: receiver.url,
    });
    await receiver.stop();
    const ev: AccountStatusEvent = {
      accountId: "acc_crash",
      workspaceId: "ws1",
      sessionId: "simulated_ws1_1_abcdefgh",
      status: "connected",
      previousStatus: "authenticated",
      node: "worker-1",
      epoch: 2,
      at: new Date().toISOString(),
    };
    await pub.broadcast("account.status", ev);
    const deliveries = async (): Promise<DeliveryView[]> =>
      (
        (await pub.call("webhooks.deliveries", { workspaceId: "ws1", id: endpoint.id })) as {
          items: DeliveryView[];
        }
      ).items;
    await waitFor(async () => ((await deliveries())[0]?.attempts ?? 0) >= 2, {
      what: "the crashing node to have tried twice",
    });

    child.kill("SIGKILL");
    await new Promise((r) => child!.once("exit", r));
    const crashedAt = Date.now();
    // A survivor starts at once and the receiver comes back; the survivor must wait out the lease.
    cluster.node("wh2", [WebhooksService]);
    await cluster.start();
    await receiver.start();

    await waitFor(() => receiver.accepted.length === 1, {
      what: "delivery by the survivor",
      timeoutMs: 20000,
    });
    const [req] = receiver.accepted;
    assert.equal(req.headers[HEADER_EVENT_ID.toLowerCase()], eventIdOf("account.status", ev));
    assert.ok(Number(req.headers[HEADER_ATTEMPT.toLowerCase()]) >= 3, "attempts before the crash count");
    assert.ok(
      req.at - crashedAt >= LEASE_TTL_MS - 800,
      `delivered ${req.at - crashedAt} ms after the crash, before the lease could expire`,
    );
    await waitFor(async () => (await deliveries())[0]?.status === "delivered");
  });
});
