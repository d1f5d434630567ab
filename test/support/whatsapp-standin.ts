// A local stand-in for web.whatsapp.com, served over HTTPS to Chromium through
// `--host-resolver-rules` (plus `--ignore-certificate-errors` for its self-signed certificate).
// Modes:
//   "qr"   — a page that imitates the few WhatsApp Web modules whatsapp-web.js 1.34.7 touches on its
//            QR path (Debug.VERSION, WAWebSocketModel, WAWebConnModel, the registration keys, the
//            pairing-code API), so the real library emits real `qr` and `code` events. The test plays
//            the phone with `command()`: `scan` links the page (kept in its localStorage, so a restored
//            profile comes back linked), `message` (text or media, a reply, in a group), `ack` (a receipt of a sent message), `disconnect` (TIMEOUT, then CONNECTED) and `logout`
//            (navigates to ?post_logout=1, as WhatsApp Web does). Each page listens for commands on
//            a stream that names its linked phone number, so the stand-in counts the browsers connected
//            per linked session at once, as WhatsApp's servers would see them. Its chats, contacts,
//            number checks and groups are in standin-directory.ts; its sends of every type (media
//            uploaded to it, vCards, replies, reactions), which it records in `sent` and may answer
//            with receipts at once (`receipts: "auto"`), in standin-send.ts;
//   "hang" — accepts connections and never answers (a start that never finishes loading).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DIRECTORY_SCRIPT } from "./standin-directory.ts";
import { sendScript, type StandinSent } from "./standin-send.ts";

export interface StandinOptions {
  mode: "qr" | "hang";
  /** How often the page rotates its QR reference. @default 60000 */
  rotateMs?: number;
  /** "auto": every message a page sends is acknowledged sent → delivered → read as soon as the
   * stand-in has it; "command": only the `ack` command sends receipts. @default "command" */
  receipts?: "auto" | "command";
}

export type StandinCommand =
  | { type: "scan"; phoneNumber: string; pushName: string }
  /** A message from `from` (a group's `…@g.us` with `author`); `text` is the caption of `media`, whose
   * bytes the page hands to whatsapp-web.js's downloadMedia(); `quotedId` makes it a reply. */
  | {
      type: "message";
      from: string;
      text: string;
      author?: string;
      quotedId?: string;
      media?: {
        kind: "image" | "document" | "audio" | "video";
        base64: string;
        mimetype: string;
        filename?: string;
      };
    }
  | { type: "disconnect" }
  /** WhatsApp's receipt of a message the page sent (its MessageAck: 1 server, 2 device, 3 read, …). */
  | { type: "ack"; id: string; ack: number }
  | { type: "logout" };

/** Which pages a command goes to: those linked to `phoneNumber` ("" = not linked), at most `limit`. */
export interface StandinTarget {
  phoneNumber?: string;
  limit?: number;
}

export interface Standin {
  port: number;
  /** Sends a command to every page connected to the stand-in (the phone's side). */
  command(cmd: StandinCommand): void;
  /** Sends a command to `target`'s pages only; returns how many it reached. */
  commandTo(cmd: StandinCommand, target: StandinTarget): number;
  /** Pages listening for commands right now. */
  readonly listeners: number;
  /** Pages listening right now as linked to `phoneNumber` ("" = not linked). */
  browsersOf(phoneNumber: string): number;
  /** Per linked phone number, the most pages seen listening for it at one moment. */
  readonly maxBrowsers: ReadonlyMap<string, number>;
  /** Chromium flags routing web.whatsapp.com to the stand-in. */
  chromiumArgs: string[];
  /** Pages served so far. */
  served: number;
  /** What the pages sent (messages and reactions), oldest first, as WhatsApp would have received it. */
  readonly sent: readonly StandinSent[];
  /** While true, media uploads are taken in and never answered (a send stays in its upload). */
  holdUploads: boolean;
  /** Uploads held unanswered so far. */
  readonly heldUploads: number;
  close(): Promise<void>;
}

/** The imitation of WhatsApp Web's module system, as far as whatsapp-web.js's QR path reaches. */
function pageScript(rotateMs: number, receipts: "auto" | "command"): string {
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
  const LINK_KEY = "standin-linked";
  const me = () => JSON.parse(localStorage.getItem(LINK_KEY) || "null");
  const wid = (user) => ({ server: "c.us", user, _serialized: user + "@c.us" });
  const Socket = new Emitter();
  Socket.state = "OPENING";
  Socket.logout = () => {};
  const setState = (s) => { Socket.state = s; Socket.emit("change:state", Socket, s); };
  const Cmd = new Emitter();
  Cmd.refreshQR = () => rotate();
  const Conn = new Emitter();
  Conn.ref = "2@" + b64(bytes(30));
  Conn.serialize = () => ({ pushname: me() ? me().pushName : undefined, platform: "android" });
  const rotate = () => { Conn.ref = "2@" + b64(bytes(30)); Conn.emit("change:ref", Conn, Conn.ref); };
  const noise = { staticKeyPair: { pubKey: bytes(32) } };
  const identity = { identityKeyPair: { pubKey: bytes(32) } };
  const adv = b64(bytes(32));
  const receivedById = new Map();
  const Msg = new Emitter();
  Msg.get = (key) => receivedById.get(key);
  // What WhatsApp Web finds of ids not loaded (its local database): here, what Msg.get finds.
  Msg.getMessagesById = async (ids) => ({ messages: ids.map((id) => Msg.get(id)).filter(Boolean) });
  const Chat = new Emitter();
  Chat.get = (w) => ({ id: w });
  const createWid = (id) => {
    const [user, server] = String(id).split("@");
    return {
      user, server, _serialized: user + "@" + server,
      isLid: () => false, isGroup: () => server === "g.us", isStatus: () => false, toJid: () => user + "@" + server,
    };
  };
  class MsgKey {
    constructor({ from, to, id }) {
      Object.assign(this, { fromMe: true, remote: to, id, _serialized: "true_" + to._serialized + "_" + id, from });
    }
    static async newId() {
      return "3EB0" + Array.from(bytes(8), (b) => b.toString(16).padStart(2, "0")).join("").toUpperCase();
    }
  }
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
    WAWebUserPrefsMeUser: {
      getMaybeMePnUser: () => (me() ? wid(me().phoneNumber) : undefined),
      getMaybeMeLidUser: () => undefined,
    },
    WAWebCollections: { Msg, Chat },
    WAWebSyncGatingUtils: {},
    WALinkify: { findLinks: () => [], findLink: () => null },
    // Sending a text, as far as whatsapp-web.js's sendMessage goes for a plain chat message.
    WAWebWidFactory: { createWid, asUserWidOrThrow: (w) => w },
    WAWebStreamModel: { Stream: { markAvailable() {}, markUnavailable() {} } },
    WAWebUpdateUnreadChatAction: { sendSeen: async () => {} },
    WAWebChatGetters: { getIsNewsletter: () => false, getIsBroadcast: () => false },
    WAWebMsgKey: MsgKey,
    WAWebGetEphemeralFieldsMsgActionsUtils: { getEphemeralFields: () => ({}) },
    // Receiving media: the message's mediaData is RESOLVED, so whatsapp-web.js's downloadMedia goes
    // straight to the download manager, which answers the bytes the command carried.
    WAWebDownloadManager: {
      downloadManager: {
        async downloadAndMaybeDecrypt({ directPath }) {
          const msg = [...receivedById.values()].find((m) => m.directPath === directPath);
          if (!msg) throw Object.assign(new Error("not found"), { status: 404 });
          return Uint8Array.from(atob(msg.bytes), (c) => c.charCodeAt(0)).buffer;
        },
      },
    },
    WAWebQuotedMsgModelUtils: { getQuotedMsgObj: (msg) => Msg.get(msg.quotedId) },
  };
  ${DIRECTORY_SCRIPT}
  ${sendScript(receipts)}
  // Modules the stand-in lacks are absent, as optional ones are in WhatsApp Web.
  window.require = (name) => modules[name];
  /** Linked: whatsapp-web.js loads its utilities once it sees the app synced. */
  const synced = () => {
    const t = setInterval(() => {
      if ((Socket.handlers["change:hasSynced"] || []).length) {
        clearInterval(t);
        Socket.emit("change:hasSynced");
      }
    }, 50);
  };
  const commands = {
    scan({ phoneNumber, pushName }) {
      localStorage.setItem(LINK_KEY, JSON.stringify({ phoneNumber, pushName }));
      listen(); // from now on this browser counts as the linked session's
      const open = indexedDB.open("wawc", 1); // WhatsApp keeps its keys in IndexedDB
      open.onupgradeneeded = () => open.result.createObjectStore("keys");
      open.onsuccess = () => {
        const tx = open.result.transaction("keys", "readwrite");
        tx.objectStore("keys").put(b64(bytes(64)), "noise");
      };
      setState("CONNECTED");
      synced();
    },
    message({ from, text, author, quotedId, media }) {
      const id = "3EB0" + Array.from(bytes(8), (b) => b.toString(16).padStart(2, "0")).join("").toUpperCase();
      const remote = from.includes("@") ? from : from + "@c.us";
      const type = media ? media.kind : "chat";
      const data = {
        id: { fromMe: false, remote, id, _serialized: "false_" + remote + "_" + id },
        body: text, type, t: Math.floor(Date.now() / 1000), from: remote, to: me().phoneNumber + "@c.us",
      };
      if (author) data.author = author.includes("@") ? author : author + "@c.us";
      if (quotedId) data.quotedMsg = { id: quotedId };
      const file = media && {
        directPath: "/v/t62/" + id, mimetype: media.mimetype, filename: media.filename, size: atob(media.base64).length,
      };
      if (file) Object.assign(data, file, { caption: text, body: "" });
      // The model Msg.get finds also holds what downloadMedia and getQuotedMessage read of it.
      const msg = Object.assign(Dir.received(data), { quotedId });
      if (file) Object.assign(msg, { bytes: media.base64, mediaData: { mediaStage: "RESOLVED" } });
      receivedById.set(data.id._serialized, msg);
      Msg.emit("add", { isNewMsg: true, ...msg });
    },
    ack({ id, ack }) {
      const msg = Msg.get(id);
      if (msg) Msg.emit("change:ack", msg, ack);
    },
    disconnect() {
      setState("TIMEOUT");
      setTimeout(() => setState("CONNECTED"), 300);
    },
    logout() {
      localStorage.removeItem(LINK_KEY);
      location.href = "/?post_logout=1";
    },
  };
  let stream = null;
  const listen = () => {
    if (stream) stream.close();
    stream = new EventSource("/standin/events?phone=" + encodeURIComponent(me() ? me().phoneNumber : ""));
    stream.onmessage = (e) => {
      const cmd = JSON.parse(e.data);
      commands[cmd.type](cmd);
    };
  };
  listen();
  window.Debug = { VERSION: "2.3000.0-standin" };
  setTimeout(() => {
    if (me()) {
      setState("CONNECTED");
      synced();
    } else setState("UNPAIRED");
  }, 50);
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

/** A page's record of a sent message, with the bytes its upload carried in place of its directPath. */
function receivedOf(
  record: StandinSent & { directPath?: string; mimetype?: string; filename?: string },
  uploads: ReadonlyMap<string, { mimetype: string; data: Buffer }>,
): StandinSent {
  const { directPath, mimetype, filename, ...rest } = record;
  const upload = directPath ? uploads.get(directPath) : undefined;
  return upload
    ? { ...rest, media: { mimetype: mimetype ?? upload.mimetype, filename, data: upload.data } }
    : rest;
}

export async function startWhatsappStandin(opts: StandinOptions): Promise<Standin> {
  const html = `<!doctype html><html><head><title>WhatsApp</title></head><body>
<div id="app"></div><script>${pageScript(opts.rotateMs ?? 60000, opts.receipts ?? "command")}</script></body></html>`;
  const held = new Set<import("node:http").ServerResponse>();
  /** Open command streams, each with the phone number its page is linked to ("" = none). */
  const streams = new Map<import("node:http").ServerResponse, string>();
  const maxBrowsers = new Map<string, number>();
  const scanned = new WeakSet<import("node:http").ServerResponse>();
  const sent: StandinSent[] = [];
  const uploads = new Map<string, { mimetype: string; data: Buffer }>();
  const browsersOf = (phone: string) => [...streams.values()].filter((p) => p === phone).length;
  const standin: Standin = {
    port: 0,
    chromiumArgs: [],
    served: 0,
    sent,
    holdUploads: false,
    heldUploads: 0,
    get listeners() {
      return streams.size;
    },
    browsersOf,
    maxBrowsers,
    command(cmd) {
      standin.commandTo(cmd, {});
    },
    commandTo(cmd, target) {
      let reached = 0;
      for (const [res, phone] of streams) {
        if (target.phoneNumber !== undefined && phone !== target.phoneNumber) continue;
        // A scanned page reconnects under its number; until its old stream closes, it is not waiting.
        if (scanned.has(res)) continue;
        if (reached >= (target.limit ?? Infinity)) break;
        res.write(`data: ${JSON.stringify(cmd)}\n\n`);
        if (cmd.type === "scan") scanned.add(res);
        reached++;
      }
      return reached;
    },
    close: async () => {},
  };
  const server: Server = createServer(selfSignedCertificate(), (req, res) => {
    if (opts.mode === "hang") {
      held.add(res); // never answered
      res.on("close", () => held.delete(res));
      return;
    }
    if (req.url?.startsWith("/standin/events")) {
      const phone = new URL(req.url, "https://web.whatsapp.com").searchParams.get("phone") ?? "";
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" });
      res.write(": connected\n\n");
      streams.set(res, phone);
      if (phone) maxBrowsers.set(phone, Math.max(maxBrowsers.get(phone) ?? 0, browsersOf(phone)));
      res.on("close", () => streams.delete(res));
      return;
    }
    if (req.method === "POST" && req.url === "/standin/upload" && standin.holdUploads) {
      (standin as { heldUploads: number }).heldUploads++;
      held.add(res); // never answered
      res.on("close", () => held.delete(res));
      return;
    }
    if (req.method === "POST" && (req.url === "/standin/upload" || req.url === "/standin/sent")) {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        let answer: object = {};
        if (req.url === "/standin/upload") {
          const directPath = `/v/t62.standin/${uploads.size + 1}`;
          uploads.set(directPath, { mimetype: req.headers["content-type"] ?? "", data: body });
          answer = { directPath };
        } else sent.push(receivedOf(JSON.parse(body.toString("utf8")), uploads));
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(answer));
      });
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
    for (const res of [...held, ...streams.keys()]) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return standin;
}
