// A real Switchboard cluster for the browser and console tests: one gateway node (api with io,
// accounts) and worker nodes (session), joined to the run's real NATS and MongoDB-wire server, the
// gateway's HTTP server on a free port. The service modules are imported statically (not through
// createNodeBroker's dynamic import): under mocha a dynamically imported module is a second instance
// of one already loaded, and the placement layer the broker middleware attaches would be invisible to
// the session service.
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { ServiceBroker } from "moleculer";
import AccountsService from "../../services/accounts.service.ts";
import { boundPort, createApiService } from "../../services/api.service.ts";
import IoService from "../../services/io.service.ts";
import SessionService from "../../services/session.service.ts";
import { ROOT } from "../../src/dev/servers.ts";
import { TestCluster, type ConfigOverrides } from "../support/cluster.ts";
import { waitFor } from "../support/wait.ts";
import { CLUSTER_ACTIONS } from "../../src/placement/actions.ts";

/** Screenshots and other files a test leaves for people to look at (git-ignored). */
export const ARTIFACTS_DIR = join(ROOT, "artifacts", "e2e");

export function artifactPath(name: string): string {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  return join(ARTIFACTS_DIR, name);
}

export interface RunningSwitchboard {
  cluster: TestCluster;
  gateway: ServiceBroker;
  workers: ServiceBroker[];
  baseUrl: string;
  adminKey: string;
  /** REST call with a key; resolves the parsed body, rejects with status and body on an error. */
  rest<T = any>(method: string, path: string, key: string, body?: unknown): Promise<T>;
  /** A new workspace key (admin route). */
  workspaceKey(workspaceId: string): Promise<string>;
  /** Stops the gateway node and starts a new one on the same port (`gateway` is then the new one):
   * an open page keeps its address, as with a gateway process restarted in place. */
  restartGateway(): Promise<void>;
  stop(): Promise<void>;
}

export interface SwitchboardOptions {
  workers?: number;
  /** Config of every node (e.g. QR timings). */
  shared?: ConfigOverrides;
  name?: string;
}

export async function startSwitchboard(opts: SwitchboardOptions = {}): Promise<RunningSwitchboard> {
  const adminKey = `admin-${randomBytes(16).toString("hex")}`;
  const cluster = new TestCluster({ adminApiKey: adminKey, ...opts.shared }, opts.name ?? "e2e");
  const workerIds = Array.from({ length: opts.workers ?? 2 }, (_, i) => `worker-${i + 1}`);
  const gatewayNode = (port: number) => {
    const overrides = { services: ["api", "io", "accounts"], port };
    const api = createApiService(cluster.config("gateway", overrides));
    return cluster.node("gateway", [api, IoService, AccountsService], overrides);
  };
  const gateway = gatewayNode(0);
  const workers = workerIds.map((id) => cluster.node(id, [SessionService], { services: ["session"] }));
  try {
    await cluster.start();
    // Every worker must hold a liveness lease (seen by every worker) before the first workspace is
    // placed, or placement would choose among fewer workers than the test expects.
    await waitFor(
      async () => {
        for (const worker of workers) {
          if (!gateway.registry.services.has("session", worker.nodeID)) return false;
          const nodes = (await gateway.call(CLUSTER_ACTIONS.nodes, {}, { nodeID: worker.nodeID })) as {
            items: { nodeId: string; worker?: boolean }[];
          };
          if (!workerIds.every((id) => nodes.items.some((n) => n.nodeId === id && n.worker))) return false;
        }
        return true;
      },
      { what: "every worker's lease to be seen by every worker", timeoutMs: 15000 },
    );
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  const port = boundPort(gateway.getLocalService("api")!);
  const baseUrl = `http://127.0.0.1:${port}`;

  async function rest<T>(method: string, path: string, key: string, body?: unknown): Promise<T> {
    const res = await fetch(baseUrl + path, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (!res.ok) {
      throw Object.assign(new Error(`${method} ${path} → ${res.status} ${text}`), {
        status: res.status,
        data,
      });
    }
    return data as T;
  }

  const running: RunningSwitchboard = {
    cluster,
    gateway,
    workers,
    baseUrl,
    adminKey,
    rest,
    async workspaceKey(workspaceId: string) {
      const r = await rest<{ key: string }>("POST", `/api/v1/workspaces/${workspaceId}/keys`, adminKey, {});
      return r.key;
    },
    async restartGateway() {
      const stopped = running.gateway;
      await stopped.stop();
      cluster.brokers.splice(cluster.brokers.indexOf(stopped), 1);
      running.gateway = gatewayNode(port);
      await cluster.start();
    },
    stop: () => cluster.stop(),
  };
  return running;
}
