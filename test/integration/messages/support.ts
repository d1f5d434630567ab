// Helpers of the messaging specs: a gateway + worker cluster with a small media limit and quick
// simulated receipts, a local HTTP server serving media, and what the simulated engine sent.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { MongoClient } from "mongodb";
import { sentBySimulatedEngine } from "../../../src/engines/simulated.ts";
import { GatewayCluster, type GatewayNode, type HttpResult } from "../api/helpers.ts";
import { connectedAccount, LONG_QR } from "../events/support.ts";
import { strict as assert } from "node:assert";

export const MEDIA_MAX = 4096;
export const PNG = Buffer.concat([Buffer.from("89504e470d0a1a0a", "hex"), Buffer.alloc(200, 7)]);
export const OGG = Buffer.concat([Buffer.from("OggS"), Buffer.alloc(200, 3)]);

export function assertError(res: HttpResult, status: number, type: string): void {
  assert.equal(res.status, status, `expected ${status} ${type}, got ${res.status} ${res.body}`);
  assert.equal(res.json.type, type, `type of ${res.body}`);
}

/** A cluster of `gateways` gateways and one worker; local media URLs (127.0.0.1) are allowed. */
export async function messagingCluster(gateways = 1): Promise<GatewayCluster> {
  const gc = new GatewayCluster({
    qr: LONG_QR,
    rateLimitPerMinute: 100000,
    mediaMaxBytes: MEDIA_MAX,
    simulatedAckMs: 30,
    webhookAllowPrivate: "127.0.0.1",
  });
  for (let i = 1; i <= gateways; i++) await gc.addGateway(`gw${i}`);
  await gc.addWorker("w1");
  await gc.start();
  return gc;
}

export async function connected(gc: GatewayCluster, workspaceId: string, name: string) {
  return connectedAccount(gc.gw.broker, workspaceId, name);
}

export function sent(accountId: string) {
  return sentBySimulatedEngine(accountId);
}

export function send(gw: GatewayNode, key: string, accountId: string, body: unknown, headers = {}) {
  return gw.call("POST", `/api/v1/accounts/${accountId}/messages`, { key, body, headers });
}

/** A local HTTP server answering `routes` (path → [content type, body]). */
export async function mediaServer(
  routes: Record<string, [string, Buffer]>,
): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const route = routes[req.url ?? ""];
    if (!route) return res.writeHead(404).end();
    res.writeHead(200, { "content-type": route[0], "content-length": route[1].length }).end(route[1]);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** Runs `fn` on the cluster's database. */
export async function withDb<T>(
  gc: GatewayCluster,
  fn: (db: import("mongodb").Db) => Promise<T>,
): Promise<T> {
  const client = await MongoClient.connect(gc.cluster.mongoUrl);
  try {
    return await fn(client.db());
  } finally {
    await client.close();
  }
}
