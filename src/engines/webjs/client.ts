// Building a whatsapp-web.js Client on a browser we launched, and wiring its events (translated by
// events.ts) to the engine. The Client's own unawaited steps are guarded here so that a browser we
// abandoned can never surface as an unhandled rejection.
import type { ConnectionTransport, Page } from "puppeteer-core";
import type wweb from "whatsapp-web.js";
import type { IncomingMessage, ReadyInfo } from "../base.ts";
import type { MessageAck } from "../../messages/types.ts";
import { classifyState, readyInfoOf, toMessageAck, type StateOutcome, type WebjsMessage } from "./events.ts";
import type { ProfileAuthStrategy } from "./auth.ts";
import { reactionMessageOf, readIncoming, type WebjsIncoming, type WebjsReaction } from "./incoming.ts";
import { pipePuppeteerOptions } from "./devtools-pipe.ts";

export interface ClientHandlers {
  qr(qr: string): void;
  code(code: string): void;
  authenticated(): void;
  authFailure(message: string): void;
  /** `info()` reads client.info (set by whatsapp-web.js just before 'ready'). */
  ready(info: () => ReadyInfo): void;
  state(outcome: StateOutcome, info: () => ReadyInfo | undefined): void;
  disconnected(reason: unknown): void;
  message(message: IncomingMessage): void;
  /** A receipt of a message this session sent. */
  ack(ack: MessageAck): void;
  /** The DevTools link to Chromium dropped. */
  browserLost(why: string): void;
  /** A re-injection (after a navigation) failed outside initialize(). */
  injectionFailed(err: unknown): Promise<void>;
}

export interface WhatsappClientOptions {
  /** Chromium's DevTools pipe. */
  devtools: ConnectionTransport;
  authStrategy: ProfileAuthStrategy;
  /** The QR policy's `max`; whatsapp-web.js's own limit is one more, as a backstop. */
  qrMax: number;
  authTimeoutMs: number;
  /** False once the engine abandoned this client: its events are then dropped. */
  isLive(): boolean;
  handlers: ClientHandlers;
}

export function createWhatsappClient(Client: typeof wweb.Client, opts: WhatsappClientOptions): wweb.Client {
  const client = new Client({
    authStrategy: opts.authStrategy as unknown as wweb.AuthStrategy,
    puppeteer: pipePuppeteerOptions(opts.devtools) as wweb.ClientOptions["puppeteer"],
    qrMaxRetries: opts.qrMax + 1,
    webVersionCache: { type: "none" }, // never writes ./.wwebjs_cache into the working directory
    authTimeoutMs: opts.authTimeoutMs,
  });
  const { handlers: h, isLive } = opts;
  const info = () =>
    client.info ? readyInfoOf(client.info as Parameters<typeof readyInfoOf>[0]) : undefined;
  guard(client, isLive, h);
  opts.authStrategy.onBrowser = (browser) =>
    browser.once(
      "disconnected",
      () => isLive() && h.browserLost("the DevTools connection to Chromium closed"),
    );
  client.on("qr", (qr: string) => isLive() && h.qr(qr));
  client.on("code", (code: string) => isLive() && h.code(code));
  client.on("authenticated", () => isLive() && h.authenticated());
  client.on("auth_failure", (message: unknown) => isLive() && h.authFailure(String(message)));
  client.on("ready", () => isLive() && h.ready(() => info()!));
  client.on("change_state", (state: unknown) => isLive() && h.state(classifyState(state), info));
  client.on("disconnected", (reason: unknown) => isLive() && h.disconnected(reason));
  // Read one after another (media downloads take a while), so messages reach the engine in order.
  let reading: Promise<void> = Promise.resolve();
  client.on("message", (msg: WebjsIncoming) => {
    if (!isLive() || msg.fromMe) return;
    reading = reading
      .then(() => readIncoming(msg))
      .then((m) => void (isLive() && h.message(m)))
      .catch(() => undefined); // one message's listener failing must not stop the ones after it
  });
  client.on("message_reaction", (r: WebjsReaction) => {
    const m = isLive() ? reactionMessageOf(r) : null;
    if (m) reading = reading.then(() => void (isLive() && h.message(m))).catch(() => undefined);
  });
  client.on("message_ack", (msg: WebjsMessage, ack: unknown) => {
    const receipt = isLive() ? toMessageAck(msg, ack) : null;
    if (receipt) h.ack(receipt);
  });
  return client;
}

/**
 * whatsapp-web.js re-injects from a 'framenavigated' listener whose rejection nobody handles, and
 * calls destroy() without awaiting it (after 'disconnected', after the last QR); once we abandon a
 * browser those rejections would crash the process. Outside initialize(), a failed injection of the
 * live client goes to the engine instead.
 */
function guard(client: wweb.Client, isLive: () => boolean, h: ClientHandlers): void {
  // The methods replaced here are whatsapp-web.js internals (inject is not in its typings).
  const c = client as unknown as Record<"inject" | "initialize" | "destroy", () => Promise<unknown>>;
  const inject = c.inject.bind(client);
  const initialize = c.initialize.bind(client);
  const destroy = c.destroy.bind(client);
  let initializing = true;
  c.initialize = async () => {
    try {
      return await initialize();
    } finally {
      initializing = false;
    }
  };
  c.destroy = async () => {
    try {
      return await destroy();
    } catch (err) {
      if (isLive()) throw err;
    }
  };
  c.inject = async () => {
    try {
      return await inject();
    } catch (err) {
      if (initializing) throw err;
      if (isLive()) await h.injectionFailed(err);
    }
  };
}

/** Asks WhatsApp Web for a new QR reference (its 'change:ref' then reaches the client as a `qr` event). */
export async function requestQrRefresh(client: wweb.Client | null): Promise<void> {
  const page = (client as { pupPage?: Page } | null)?.pupPage;
  await page
    ?.evaluate(() => {
      // WhatsApp Web's module loader; which module refreshes the QR depends on its version.
      type WaModule = { Cmd: { refreshQR(): void }; refreshQR(): void };
      const req = (window as unknown as { require: (m: string) => WaModule }).require;
      try {
        req("WAWebCmd").Cmd.refreshQR();
      } catch {
        req("WAWebLaunchSocketUtils").refreshQR();
      }
    })
    .catch(() => undefined);
}
