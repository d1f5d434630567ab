// A real gateway cluster for the API specs: gateway nodes (api + accounts) and worker nodes (session,
// and the placement layer's services when they exist) over the run's NATS and MongoDB-wire server,
// gateways on port 0; plus a raw HTTP client (raw paths, raw bodies, any header).
import { randomBytes } from "node:crypto";
import { Agent, request as httpRequest, type IncomingHttpHeaders } from "node:http";
import type { Service, ServiceBroker, ServiceSchema } from "moleculer";
// Static imports: a dynamic import() of a service file would load a second copy of the modules it
// shares with the harness (ESM next to the spec's CommonJS), e.g. the per-broker placement registry.
import AccountsService from "../../../services/accounts.service.ts";
import { createApiService, boundPort } from "../../../services/api.service.ts";
import SessionService from "../../../services/session.service.ts";
import { TestCluster, type ConfigOverrides } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The body parsed as JSON, when it is JSON. */
  json: any;
}

const agent = new Agent({ keepAlive: true, maxSockets: 64 });

export interface RequestOptions {
  key?: string;
  /** An object is sent as JSON; a string or Buffer as is. */
  body?: unknown;
  headers?: Record<string, string>;
}

/** One HTTP request with the path sent exactly as given (no URL normalisation). */
export function rawRequest(
  port: number,
  method: string,
  path: string,
  opts: RequestOptions = {},
): Promise<HttpResult> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.key) headers.authorization = `Bearer ${opts.key}`;
  let payload: Buffer | undefined;
  if (opts.body !== undefined) {
    payload = Buffer.isBuffer(opts.body)
      ? opts.body
      : Buffer.from(typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body));
    headers["content-type"] ??= "application/json";
    headers["content-length"] = String(payload.length);
  }
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, method, path, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const body = Buffer.concat(chunks);
        let json: unknown = undefined;
        if (String(res.headers["content-type"] ?? "").includes("application/json")) {
          try {
            json = JSON.parse(body.toString());
          } catch {
            json = undefined;
          }
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(payload);
  });
}

export interface GatewayNode {
  broker: ServiceBroker;
  port: number;
  call(method: string, path: string, opts?: RequestOptions): Promise<HttpResult>;
}

export class GatewayCluster {
  readonly cluster: TestCluster;
  readonly adminKey = `admin-${randomBytes(16).toString("hex")}`;
  readonly gateways: GatewayNode[] = [];
  readonly workers: ServiceBroker[] = [];

  constructor(shared: ConfigOverrides = {}) {
    this.cluster = new TestCluster({ ...shared, adminApiKey: this.adminKey }, "api");
  }

  /** A gateway node (api + accounts); `overrides` e.g. a low rate limit or CORS origins. */
  async addGateway(nodeId: string, overrides: ConfigOverrides = {}): Promise<ServiceBroker> {
    const cfg = this.cluster.config(nodeId, { services: ["api", "accounts"], port: 0, ...overrides });
    const schemas = [createApiService(cfg), AccountsService as unknown as ServiceSchema];
    return this.cluster.node(nodeId, schemas, { services: ["api", "accounts"], port: 0, ...overrides });
  }

  /** A worker node: session (with the placement layer and its cluster actions). */
  async addWorker(nodeId: string, overrides: ConfigOverrides = {}): Promise<ServiceBroker> {
    const broker = this.cluster.node(nodeId, [SessionService as unknown as ServiceSchema], {
      services: ["session"],
      ...overrides,
    });
    this.workers.push(broker);
    return broker;
  }

  async start(): Promise<void> {
    await this.cluster.start();
    for (const broker of this.cluster.brokers) {
      const api = broker.getLocalService("api") as Service | undefined;
      if (!api) continue;
      const port = boundPort(api);
      this.gateways.push({ broker, port, call: (m, p, o) => rawRequest(port, m, p, o) });
    }
    // Remote services become callable about a second after start.
    const gw = this.gateways[0];
    await waitFor(
      () =>
        gw.broker.registry.getServiceList({ onlyAvailable: true }).some((s) => s.name === "accounts") &&
        this.workers.every((w) =>
          gw.broker.registry
            .getServiceList({ onlyAvailable: true })
            .some((s) => s.name === "session" && (s as unknown as { nodeID: string }).nodeID === w.nodeID),
        ),
      { what: "accounts and every worker's session service to be visible to the gateway", timeoutMs: 15000 },
    );
  }

  get gw(): GatewayNode {
    return this.gateways[0];
  }

  async createKey(workspaceId: string): Promise<{ key: string; keyId: string }> {
    const res = await this.gw.call("POST", `/api/v1/workspaces/${workspaceId}/keys`, { key: this.adminKey });
    if (res.status !== 201) throw new Error(`key creation failed: ${res.status} ${res.body}`);
    return res.json;
  }

  async stop(): Promise<void> {
    await this.cluster.stop();
  }
}

/** Waits until the account reaches `status` (as the REST API shows it). */
export async function waitForStatus(
  gw: GatewayNode,
  key: string,
  id: string,
  status: string,
  timeoutMs = 10000,
) {
  return waitFor(
    async () => {
      const res = await gw.call("GET", `/api/v1/accounts/${id}`, { key });
      return res.status === 200 && res.json.status === status ? res.json : null;
    },
    { what: `account ${id} to be ${status}`, timeoutMs },
  );
}

/** Long QR timings: accounts stay in qr_scanning for the whole spec. */
export const LONG_QR: ConfigOverrides = { qr: { firstTtlMs: 600000, refreshMs: 600000, max: 6 } };

/** Valid values of the path params besides `:accountId` (chat, group, phone, message), so that a
 * route called for another workspace's account can fail only on the account. */
const PATH_EXAMPLES: Record<string, string> = {
  chatId: "15550000003@c.us",
  groupId: "120363000000000001@g.us",
  phone: "15551112222",
  messageId: "true_1234567@c.us_3EB0AA",
};

/** The URL path of an account route for `accountId`, its other path params filled with valid values. */
export function accountRoutePath(path: string, accountId: string): string {
  return path
    .replace(":accountId", accountId)
    .replace(/:([A-Za-z]+)/g, (m, name: string) => PATH_EXAMPLES[name] ?? m);
}
