// A local stand-in for web.whatsapp.com, served over HTTPS to Chromium through
// `--host-resolver-rules` (plus `--ignore-certificate-errors` for its self-signed certificate).
// Modes:
//   "qr"   — a page that imitates the few WhatsApp Web modules whatsapp-web.js 1.34.7 touches on its
//            QR path (Debug.VERSION, WAWebSocketModel, WAWebConnModel, the registration keys, the
//            pairing-code API), so the real library emits real `qr` and `code` events;
//   "hang" — accepts connections and never answers (a start that never finishes loading).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface StandinOptions {
  mode: "qr" | "hang";
  /** How often the page rotates its QR reference. @default 60000 */
  rotateMs?: number;
}

export interface Standin {
  port: number;
  /** Chromium flags routing web.whatsapp.com to the stand-in. */
  chromiumArgs: string[];
  /** Pages served so far. */
  served: number;
  close(): Promise<void>;
}

/** The imitation of WhatsApp Web's module system, as far as whatsapp-web.js's QR path reaches. */
function pageScript(rotateMs: number): string {
  return `
(() => {
  class Emitter {
    constructor() { this.handlers = {}; }
    on(e, f) { (this.handlers[e] = this.handlers[e] || []).push(f); }
    off(e, f) { this.handlers[e] = (this.handlers[e] || []).filter((x) => x !== f); }
    emit(e, ...a) { for (const f of [...(this.handlers[e] || [])]) f(...a); }
  }
  const bytes = (n) => crypto.getRandomValues(new Uint8Array(n));
  const b64 = (u8) => btoa(String.fromCharCode(...u8));
  const Socket = new Emitter();
  Socket.state = "OPENING";
  Socket.logout = () => {};
  const setState = (s) => { Socket.state = s; Socket.emit("change:state", Socket, s); };
  const Cmd = new Emitter();
  Cmd.refreshQR = () => rotate();
  const Conn = new Emitter();
  Conn.ref = "2@" + b64(bytes(30));
  Conn.serialize = () => ({ pushname: "Stand-in", platform: "android" });
  const rotate = () => { Conn.ref = "2@" + b64(bytes(30)); Conn.emit("change:ref", Conn, Conn.ref); };
  const noise = { staticKeyPair: { pubKey: bytes(32) } };
  const identity = { identityKeyPair: { pubKey: bytes(32) } };
  const adv = b64(bytes(32));
  const modules = {
    WAWebSocketModel: { Socket },
    WAWebCmd: { Cmd },
    WAWebConnModel: { Conn },
    WAWebOfflineHandler: { OfflineMessageHandler: { getOfflineDeliveryProgress: () => 100 } },
    WAWebAltDeviceLinkingApi: {
      setPairingType() {},
      async initializeAltDeviceLinking() {},
      async initializeQRLinking() {},
      async startAltLinkingFlow() {
        const abc = "ABCDEFGHJKLMNPQRSTVWXYZ123456789";
        return Array.from(bytes(8), (b) => abc[b % abc.length]).join("");
      },
    },
    WABase64: { encodeB64: b64 },
    WAWebCompanionRegClientUtils: { DEVICE_PLATFORM: "Chrome" },
    WAWebAdvSignatureApi: {},
    WAWebUserPrefsInfoStore: { waNoiseInfo: { get: async () => noise } },
    WAWebSignalStoreApi: { waSignalStore: { getRegistrationInfo: async () => identity } },
    WAWebUserPrefsMultiDevice: { getADVSecretKey: () => adv },
    WAWebMiscBrowserUtils: { info: () => ({ os: "Linux", name: "Chrome" }) },
  };
  window.require = (name) => {
    if (!(name in modules)) throw new Error("the stand-in has no module " + name);
    return modules[name];
  };
  window.Debug = { VERSION: "2.3000.0-standin" };
  setTimeout(() => setState("UNPAIRED"), 50);
  setInterval(rotate, ${rotateMs});
})();`;
}

function selfSignedCertificate(): { key: Buffer; cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), "standin-cert-"));
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=web.whatsapp.com",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
      ],
      { stdio: "ignore" },
    );
    return { key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function startWhatsappStandin(opts: StandinOptions): Promise<Standin> {
  const html = `<!doctype html><html><head><title>WhatsApp</title></head><body>
<div id="app"></div><script>${pageScript(opts.rotateMs ?? 60000)}</script></body></html>`;
  const held = new Set<import("node:http").ServerResponse>();
  const standin = { port: 0, chromiumArgs: [] as string[], served: 0, close: async () => {} };
  const server: Server = createServer(selfSignedCertificate(), (req, res) => {
    if (opts.mode === "hang") {
      held.add(res); // never answered
      res.on("close", () => held.delete(res));
      return;
    }
    if (req.url === "/" || req.url?.startsWith("/?")) {
      standin.served++;
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(html);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  standin.port = (server.address() as { port: number }).port;
  standin.chromiumArgs = [
    `--host-resolver-rules=MAP web.whatsapp.com 127.0.0.1:${standin.port}`,
    "--ignore-certificate-errors",
  ];
  standin.close = async () => {
    for (const res of held) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return standin;
}
