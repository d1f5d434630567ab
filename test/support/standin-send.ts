// The stand-in's send path (whatsapp-standin.ts puts this script into its page, after
// standin-directory.ts's): the WhatsApp Web modules whatsapp-web.js 1.34.7's sendMessage reaches for
// media (processMediaData: WAWebMediaOpaqueData, WAWebPrepRawMedia, WAWebMediaStorage,
// WAWebMmsMediaTypes, WAWebMediaDataUtils, WAWebMediaMmsV4Upload), a vCard (WAWebVcardParsingUtils,
// WAWebVcardGetNameFromParsed), a quoted reply (the quoted model's canReply / msgContextInfo) and a
// reaction (WAWebSendReactionMsgAction). An upload POSTs the file's bytes to the stand-in's server, as
// WhatsApp Web uploads to its media hosts; every message sent (and every reaction) is POSTed as a
// record of what WhatsApp would have received, which the test reads with `Standin.sent`. With
// `receipts: "auto"` each sent message is then acknowledged sent → delivered → read, as a phone that
// reads at once would; otherwise only the `ack` command sends receipts.
// Runs inside the page, after `modules`, `Msg`, `Dir`, `bytes` and `b64` are defined.

/** What the stand-in received of a message its page sent (WhatsApp's wire names: `chat`, `ptt`, `vcard`). */
export interface StandinSent {
  /** The message's serialized id; a reaction has none of its own (`reaction` names its target). */
  id?: string;
  to: string;
  type: string;
  body?: string;
  caption?: string;
  /** The uploaded file: its mimetype, filename and the bytes the upload carried. */
  media?: { mimetype: string; filename?: string; data: Buffer };
  lat?: number;
  lng?: number;
  /** A location's description (name and address). */
  loc?: string;
  /** A vCard's formatted name. */
  vcardFormattedName?: string;
  mentions?: string[];
  /** The serialized id of the message this one quotes. */
  quotedId?: string;
  reaction?: { to: string; emoji: string };
}

/** The page's half; `receipts` is "auto" or "command". */
export const sendScript = (receipts: "auto" | "command") => `
  (() => {
    const post = (path, body, type = "application/json") =>
      fetch(path, { method: "POST", headers: { "content-type": type }, body }).then((r) => r.json());
    const kindOf = (mimetype, p) =>
      p.asDocument ? "document"
      : mimetype.startsWith("image/") ? "image"
      : mimetype.startsWith("video/") ? "video"
      : mimetype.startsWith("audio/") ? (p.isPtt ? "ptt" : "audio")
      : "document";
    const blobs = new Map(); // filehash → the File to upload
    const mediaObjects = new Map();

    class OpaqueData {
      constructor(blob) { Object.defineProperty(this, "blob", { value: blob }); }
      static async createFromData(blob) { return new OpaqueData(blob); }
      url() { return "blob:standin"; }
      autorelease() {}
      formData() { return this.blob; }
    }
    class MediaData {
      constructor(fields, blob) {
        Object.assign(this, fields);
        Object.defineProperty(this, "mediaBlob", { value: blob, writable: true });
      }
      set(fields) { Object.assign(this, fields); }
      toJSON() { return { ...this }; }
    }

    Object.assign(modules, {
      WAWebMediaOpaqueData: OpaqueData,
      WAWebPrepRawMedia: {
        prepRawMedia: (opaque, params) => ({
          waitForPrep: async () => {
            const file = opaque.blob;
            const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
            const filehash = b64(new Uint8Array(digest));
            blobs.set(filehash, file);
            const type = kindOf(file.type, params);
            const fields = { type, mimetype: file.type, filehash, size: file.size, isGif: Boolean(params.asGif) };
            if (type === "document") fields.filename = file.name;
            return new MediaData(fields, opaque);
          },
        }),
      },
      WAWebMediaStorage: {
        getOrCreateMediaObject: (filehash) => {
          if (!mediaObjects.has(filehash)) {
            const object = { filehash, type: undefined, size: 0, contentInfo: { waveform: new Uint8Array(64) } };
            object.consolidate = (json) => Object.assign(object, { type: json.type, size: json.size });
            mediaObjects.set(filehash, object);
          }
          return mediaObjects.get(filehash);
        },
      },
      WAWebMmsMediaTypes: { msgToMediaType: ({ type }) => type, castToV4: (type) => type },
      WAWebMediaDataUtils: { shouldUseMediaCache: () => false },
      WAWebMediaMmsV4Upload: {
        uploadMedia: async ({ mimetype, mediaObject }) => {
          const { directPath } = await post("/standin/upload", blobs.get(mediaObject.filehash), mimetype);
          return {
            mediaEntry: {
              mmsUrl: location.origin + directPath, directPath, mediaKey: b64(bytes(32)),
              mediaKeyTimestamp: Math.floor(Date.now() / 1000), encFilehash: mediaObject.filehash,
              uploadHash: mediaObject.filehash,
            },
          };
        },
      },
      WAWebVcardParsingUtils: {
        parseVcard: (text) => {
          const fn = text.split(/\\r?\\n/).find((line) => line.startsWith("FN:"));
          if (!fn) throw new Error("no FN");
          return { fn: fn.slice(3).replace(/\\\\(.)/g, "$1") };
        },
      },
      WAWebVcardGetNameFromParsed: { vcardGetNameFromParsed: (parsed) => parsed.fn },
      WAWebSendReactionMsgAction: {
        sendReactionToMsg: async (msg, emoji) => {
          const to = typeof msg.id.remote === "string" ? msg.id.remote : msg.id.remote._serialized;
          await post("/standin/sent", JSON.stringify({ to, type: "reaction", reaction: { to: msg.id._serialized, emoji } }));
          return { messageSendResult: "OK" };
        },
      },
    });

    // A model Msg.get finds can be quoted: its context info names it (WhatsApp sends the stanza id).
    const quoted = new Map(); // stanza id → serialized id
    Msg.get = ((get) => (key) => {
      const model = get(key);
      if (model && !model.msgContextInfo) {
        model.canReply = () => true;
        model.msgContextInfo = () => {
          quoted.set(model.id.id, model.id._serialized);
          return { quotedMsg: { type: model.type, body: model.body }, quotedStanzaID: model.id.id, quotedRemoteJid: model.id.remote };
        };
      }
      return model;
    })(Msg.get);

    const recordOf = (m) => ({
      id: m.id._serialized, to: m.id.remote, type: m.type,
      body: typeof m.body === "string" ? m.body : undefined, caption: m.caption,
      mimetype: m.mimetype, filename: m.filename, directPath: m.directPath,
      lat: m.lat, lng: m.lng, loc: m.loc, vcardFormattedName: m.vcardFormattedName,
      mentions: (m.mentionedJidList || []).map((w) => w._serialized),
      quotedId: m.quotedStanzaID && quoted.get(m.quotedStanzaID),
    });
    const acknowledge = (msg) => {
      for (const ack of [1, 2, 3]) {
        msg.ack = ack;
        Msg.emit("change:ack", msg, ack);
      }
    };

    modules.WAWebSendMsgChatAction = {
      addAndSendMsgToChat(_chat, message) {
        const data = { ...message, id: { ...message.id, remote: message.id.remote._serialized } };
        const model = Dir.sent(data); // Msg.get finds it from now on
        const recorded = post("/standin/sent", JSON.stringify(recordOf(data)));
        if (${JSON.stringify(receipts)} === "auto") recorded.then(() => acknowledge(model));
        return [Promise.resolve(), recorded];
      },
    };
  })();
`;
