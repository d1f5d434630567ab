// A whatsapp-web.js 'message' → IncomingMessage: its type, the group member who wrote it, the quoted
// message, a location, vCards, and the media bytes (downloadMedia); a 'message_reaction' → a
// `reaction` message. The mapping of fields is pure and
// unit-tested; reading a message asks the page for the media and the quoted message.
import type { IncomingMessage, IncomingType } from "../../messages/incoming.ts";
import { contactOfVcard } from "../../messages/incoming.ts";
import { fromChatId, toIncomingMessage, type WebjsMessage } from "./events.ts";

/** What this module reads of a whatsapp-web.js Message (its class, as far as we use it). */
export interface WebjsIncoming extends WebjsMessage {
  type?: string;
  author?: string;
  hasMedia?: boolean;
  hasQuotedMsg?: boolean;
  location?: { latitude?: number | string; longitude?: number | string; description?: string };
  vCards?: string[];
  downloadMedia?(): Promise<{ mimetype?: string; data?: string; filename?: string | null } | undefined>;
  getQuotedMessage?(): Promise<{ id?: { _serialized?: string } } | undefined>;
}

/** whatsapp-web.js's MessageTypes → ours (a voice note, `ptt`, is audio; a vCard list is a contact). */
const TYPES: Record<string, IncomingType> = {
  chat: "text",
  image: "image",
  video: "video",
  audio: "audio",
  ptt: "audio",
  document: "document",
  sticker: "sticker",
  location: "location",
  vcard: "contact",
  multi_vcard: "contact",
  reaction: "reaction",
};

export function incomingTypeOf(webjsType: string | undefined): IncomingType {
  return webjsType === undefined ? "text" : (TYPES[webjsType] ?? "other");
}

/** The fields of `msg` that need no page call: everything but the media bytes and the quoted id. */
export function incomingFieldsOf(msg: WebjsIncoming): IncomingMessage {
  const type = incomingTypeOf(msg.type);
  const m: IncomingMessage = { ...toIncomingMessage(msg), type };
  if (msg.author) m.author = fromChatId(msg.author);
  if (type === "location") {
    // The body of a location is its thumbnail (base64 JPEG), not text.
    m.text = msg.location?.description ?? "";
    const latitude = Number(msg.location?.latitude);
    const longitude = Number(msg.location?.longitude);
    if (Number.isFinite(latitude) && Number.isFinite(longitude)) {
      m.location = { latitude, longitude };
      if (msg.location?.description) m.location.name = msg.location.description;
    }
  }
  if (type === "contact") {
    const vcards = msg.vCards?.length ? msg.vCards : msg.body ? [msg.body] : [];
    m.contacts = vcards.map(contactOfVcard);
    m.text = "";
  }
  if (type === "sticker") m.text = "";
  return m;
}

/** The whole message: the fields, the quoted message's id, and the media downloaded. Never rejects: a
 * download that fails leaves `mediaError`, a quoted message that cannot be read leaves no `quotedId`. */
export async function readIncoming(msg: WebjsIncoming): Promise<IncomingMessage> {
  const m = incomingFieldsOf(msg);
  if (msg.hasQuotedMsg && msg.getQuotedMessage) {
    const quoted = await msg.getQuotedMessage().catch(() => undefined);
    if (quoted?.id?._serialized) m.quotedId = quoted.id._serialized;
  }
  if (msg.hasMedia && msg.downloadMedia) {
    try {
      const media = await msg.downloadMedia();
      if (!media?.data) throw new Error("WhatsApp Web returned no media (expired or deleted)");
      m.media = {
        data: Buffer.from(media.data, "base64"),
        mimetype: media.mimetype || "application/octet-stream",
        filename: media.filename || undefined,
      };
    } catch (err) {
      m.mediaError = err instanceof Error ? err.message : String(err);
    }
  }
  return m;
}

/** What this module reads of a whatsapp-web.js Reaction ('message_reaction'). */
export interface WebjsReaction {
  id?: { _serialized?: string; fromMe?: boolean; remote?: string | { _serialized?: string } };
  /** The emoji; "" when a reaction was taken back. */
  reaction?: string;
  msgId?: { _serialized?: string };
  senderId?: string;
  timestamp?: number;
}

/** A reaction someone else made → an incoming `reaction` message (`quotedId`: the message reacted to);
 * null for this session's own reactions and for reactions without an id. */
export function reactionMessageOf(r: WebjsReaction, now = Date.now()): IncomingMessage | null {
  const id = r.id?._serialized;
  if (!id || r.id?.fromMe) return null;
  const remote = typeof r.id?.remote === "string" ? r.id.remote : r.id?.remote?._serialized;
  const chat = remote ?? r.senderId ?? "";
  // WhatsApp Web dates reactions in ms, messages in seconds.
  const t = r.timestamp ?? now;
  const m: IncomingMessage = {
    id,
    from: fromChatId(chat),
    text: "",
    timestamp: Math.floor(t > 1e12 ? t / 1000 : t),
    type: "reaction",
    emoji: r.reaction ?? "",
  };
  if (r.msgId?._serialized) m.quotedId = r.msgId._serialized;
  if (chat.endsWith("@g.us") && r.senderId) m.author = fromChatId(r.senderId);
  return m;
}
