// A real local HTTP receiver for webhook tests: records every request (headers and raw body) and
// answers with the status a test's `respond` function picks. It can go down and come back on the same
// port (a receiver that is down across a restart).
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";

export interface ReceivedRequest {
  headers: IncomingHttpHeaders;
  raw: string;
  body: any;
  /** Status the receiver answered. */
  status: number;
  at: number;
}

export type Responder = (req: ReceivedRequest, index: number) => number;

export class WebhookReceiver {
  readonly requests: ReceivedRequest[] = [];
  respond: Responder = () => 200;
  port = 0;
  private server: Server | null = null;

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  /** Requests that were answered 2xx. */
  get accepted(): ReceivedRequest[] {
    return this.requests.filter((r) => r.status >= 200 && r.status < 300);
  }

  async start(): Promise<this> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const raw = Buffer.concat(chunks).toString("utf8");
        let body: unknown;
        try {
          body = JSON.parse(raw);
        } catch {
          body = null;
        }
        const entry: ReceivedRequest = { headers: req.headers, raw, body, status: 0, at: Date.now() };
        entry.status = this.respond(entry, this.requests.length);
        this.requests.push(entry);
        res.writeHead(entry.status, { "content-type": "text/plain" });
        res.end(entry.status < 300 ? "ok" : "nope");
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolve());
    });
    this.port = (server.address() as { port: number }).port;
    this.server = server;
    return this;
  }

  /** Goes down (connections refused) and keeps its port for `start()`. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
