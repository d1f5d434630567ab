// DevTools over the pipe Chromium opens with --remote-debugging-pipe (it reads commands on fd 3 and
// writes answers on fd 4, each message ended by a NUL byte), instead of a loopback port that any local
// process could connect to and drive the session with. Also how whatsapp-web.js is given that pipe.
import { createRequire } from "node:module";
import type { Readable, Writable } from "node:stream";
import type { ConnectionTransport, ConnectOptions } from "puppeteer-core";

/** A puppeteer ConnectionTransport over Chromium's DevTools pipe. */
export class PipeTransport implements ConnectionTransport {
  onmessage?: (message: string) => void;
  onclose?: () => void;
  private pending: Buffer[] = [];
  private closed = false;

  /** @param toChromium the parent's end of Chromium's fd 3; @param fromChromium of its fd 4 */
  constructor(
    private readonly toChromium: Writable,
    private readonly fromChromium: Readable,
  ) {
    fromChromium.on("data", (chunk: Buffer) => this.receive(chunk));
    fromChromium.once("close", () => this.ended());
    // A write to a browser that died fails with EPIPE; its exit is handled where the process is watched.
    fromChromium.on("error", () => this.ended());
    toChromium.on("error", () => this.ended());
  }

  get isClosed(): boolean {
    return this.closed;
  }

  send(message: string): void {
    if (this.closed) return;
    this.toChromium.write(message);
    this.toChromium.write("\0");
  }

  /** Sends one command before puppeteer owns the pipe; resolves with its result (the launch handshake). */
  request(id: number, method: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const previous = this.onmessage;
      this.onmessage = (raw) => {
        const msg = JSON.parse(raw) as { id?: number; result?: unknown; error?: { message: string } };
        if (msg.id !== id) return;
        this.onmessage = previous;
        if (msg.error) reject(new Error(`${method}: ${msg.error.message}`));
        else resolve(msg.result);
      };
      this.send(JSON.stringify({ id, method }));
    });
  }

  close(): void {
    if (this.closed) return;
    this.toChromium.end();
    this.fromChromium.destroy();
    this.ended();
  }

  private receive(chunk: Buffer): void {
    // NUL never occurs inside UTF-8 text, so messages are cut at byte level and decoded whole.
    let start = 0;
    let end = chunk.indexOf(0);
    while (end !== -1) {
      const message = Buffer.concat([...this.pending, chunk.subarray(start, end)]).toString("utf8");
      this.pending = [];
      // Asynchronously, as puppeteer's own transports do: its Connection must not re-enter itself.
      setImmediate(() => this.onmessage?.(message));
      start = end + 1;
      end = chunk.indexOf(0, start);
    }
    if (start < chunk.length) this.pending.push(chunk.subarray(start));
  }

  private ended(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending = [];
    // After the messages already queued (setImmediate), so that none arrives after the close.
    setImmediate(() => this.onclose?.());
  }
}

const PIPE = Symbol("switchboard.devtoolsPipe");
type PipeConnectOptions = ConnectOptions & { [PIPE]?: ConnectionTransport };
let connectWrapped = false;

/**
 * `puppeteer` options for a whatsapp-web.js Client that make it connect over `transport`.
 * whatsapp-web.js 1.34 connects only when given a `browserWSEndpoint` (else it launches a browser of
 * its own) and passes its options to puppeteer's connect(), which takes exactly one of an endpoint
 * or a transport. So the options carry a placeholder endpoint and the transport under a private key,
 * and puppeteer's connect(), as whatsapp-web.js resolves it, swaps the one for the other when it sees
 * that key; any other caller's options pass through untouched.
 */
export function pipePuppeteerOptions(transport: ConnectionTransport): ConnectOptions {
  wrapConnect();
  return { browserWSEndpoint: "pipe:", defaultViewport: null, [PIPE]: transport } as PipeConnectOptions;
}

function wrapConnect(): void {
  if (connectWrapped) return;
  // The module instance whatsapp-web.js's Client requires (`require('puppeteer')` from its folder).
  const fromClient = createRequire(createRequire(import.meta.url).resolve("whatsapp-web.js"));
  const puppeteer = fromClient("puppeteer") as { connect(opts: ConnectOptions): Promise<unknown> };
  const connect = puppeteer.connect.bind(puppeteer);
  puppeteer.connect = (opts: PipeConnectOptions) => {
    const transport = opts?.[PIPE];
    if (!transport) return connect(opts);
    const { browserWSEndpoint: _placeholder, [PIPE]: _transport, ...rest } = opts;
    return connect({ ...rest, transport });
  };
  connectWrapped = true;
}
