// Helpers of the io specs: Socket.IO clients that record what they receive, an observer broker that
// records what the bus carried, and REST calls against a gateway.
import type { ServiceBroker, ServiceSchema } from "moleculer";
import {
  io as connectSocket,
  type ManagerOptions,
  type Socket as ClientSocket,
  type SocketOptions,
} from "socket.io-client";
import { RELAYED_EVENTS, workspaceOfEvent } from "../../../src/io/relay.ts";
import { waitFor } from "../../support/wait.ts";

export interface Received {
  event: string;
  payload: any;
}

/** A stable identity of one event, the same on every receiver. */
export function eventKey(event: string, p: any): string {
  switch (event) {
    case "account.status":
      return `${p.accountId}|status|${p.status}|${p.at}|${p.epoch}`;
    case "account.qr":
      return `${p.accountId}|qr|${p.seq}|${p.expiresAt}`;
    case "account.message":
      return `${p.accountId}|msg|${p.id}`;
    case "account.pairing_code":
      return `${p.accountId}|code|${p.code}`;
    case "account.created":
      return `${p.account?.id}|created`;
    default:
      return `${p.accountId}|${event}`;
  }
}

export class RecordingSocket {
  readonly socket: ClientSocket;
  readonly received: Received[] = [];
  snapshot: { items: any[] } | null = null;

  constructor(
    readonly url: string,
    auth: Record<string, unknown> | undefined,
    readonly workspaceId?: string,
    /** E.g. `localAddress`, to connect from another loopback address. */
    extra: Partial<ManagerOptions & SocketOptions> & { localAddress?: string } = {},
  ) {
    this.socket = connectSocket(url, {
      auth,
      transports: ["websocket"],
      reconnection: false,
      forceNew: true,
      ...extra,
    });
    this.socket.on("accounts.snapshot", (s: { items: any[] }) => (this.snapshot = s));
    for (const event of RELAYED_EVENTS)
      this.socket.on(event, (payload: any) => this.received.push({ event, payload }));
  }

  /** Resolves once the snapshot arrived (the socket is then in its room). */
  async ready(): Promise<this> {
    await waitFor(() => this.snapshot, { what: `snapshot on a socket of ${this.workspaceId}` });
    return this;
  }

  /** Resolves with the connect error of a refused handshake. */
  refused(): Promise<Error & { data?: any }> {
    return new Promise((resolve, reject) => {
      this.socket.once("connect_error", resolve);
      this.socket.once("connect", () => reject(new Error("the socket was accepted")));
    });
  }

  /** `emit("call", action, params, cb)` as a promise (moleculer-io's `cb(err, res)`). */
  call(action: string, params?: unknown): Promise<any> {
    return new Promise((resolve, reject) =>
      this.socket.emit("call", action, params, (err: unknown, res: unknown) =>
        err ? reject(err) : resolve(res),
      ),
    );
  }

  statusesOf(accountId: string): string[] {
    return this.received
      .filter((r) => r.event === "account.status" && r.payload.accountId === accountId)
      .map((r) => r.payload.status);
  }

  keys(): string[] {
    return this.received.map((r) => eventKey(r.event, r.payload));
  }

  close(): void {
    this.socket.close();
  }
}

/** A service that records every relayed event the bus carries (broadcasts reach it too). */
export function observerService(sink: Received[]): ServiceSchema {
  return {
    name: "io-observer",
    events: Object.fromEntries(
      RELAYED_EVENTS.map((event) => [event, (ctx: any) => void sink.push({ event, payload: ctx.params })]),
    ),
  };
}

/** Keys of the bus events of one workspace. */
export function busKeysOf(bus: Received[], workspaceId: string): string[] {
  return bus
    .filter((r) => workspaceOfEvent(r.payload) === workspaceId)
    .map((r) => eventKey(r.event, r.payload));
}

export class Rest {
  constructor(readonly base: string) {}

  async call(
    method: string,
    path: string,
    key: string,
    body?: unknown,
  ): Promise<{ status: number; body: any }> {
    const res = await fetch(this.base + path, {
      method,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  async ok(method: string, path: string, key: string, body?: unknown): Promise<any> {
    const res = await this.call(method, path, key, body);
    if (res.status >= 300) throw new Error(`${method} ${path} → ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }
}

/** The bound port of the gateway service of a started broker. */
export function gatewayPort(broker: ServiceBroker): number {
  const svc = broker.getLocalService("api") as unknown as { server: import("node:http").Server };
  const addr = svc.server.address();
  return typeof addr === "object" && addr ? addr.port : 0;
}
