// Validation of a send request, before anything is recorded or sent: each refusal is a
// MessageRejectedError with a stable `type` (src/errors.ts). Pure: no I/O, so it unit-tests alone.
import { createHash } from "node:crypto";
import {
  ERR_INVALID_MEDIA,
  ERR_INVALID_RECIPIENT,
  ERR_MEDIA_TOO_LARGE,
  ERR_MEDIA_TYPE_MISMATCH,
  ERR_UNSUPPORTED_MESSAGE_TYPE,
  MessageRejectedError,
  ValidationError,
} from "../errors.ts";
import {
  MEDIA_TYPES,
  MESSAGE_TYPES,
  type ContactInput,
  type LocationInput,
  type MediaInput,
  type MessageDraft,
  type MessageType,
} from "./types.ts";

/** A phone number: an optional +, then 6–16 digits (spaces and dashes between them are allowed). */
const PHONE = /^\+?[0-9][0-9 -]{4,22}[0-9]$/;
/** A WhatsApp chat id: a person (`…@c.us`, `…@lid`, `…@s.whatsapp.net`), a group (`…@g.us`), a channel. */
const CHAT_ID = /^[0-9]{5,24}(-[0-9]{5,16})?@(c\.us|g\.us|lid|s\.whatsapp\.net|newsletter)$/;
const MIMETYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/;
/** Mimetypes WhatsApp takes for each media type (a document may be anything). */
const ACCEPTED: Record<string, (mimetype: string) => boolean> = {
  image: (m) => ["image/jpeg", "image/png", "image/webp"].includes(m),
  video: (m) => ["video/mp4", "video/3gpp"].includes(m),
  audio: (m) => ["audio/ogg", "audio/mpeg", "audio/mp4", "audio/aac", "audio/amr", "audio/opus"].includes(m),
  document: () => true,
};
/** WhatsApp's own limits on a caption and an emoji reaction. */
export const CAPTION_MAX = 1024;
const EMOJI_MAX = 16;
export const MENTIONS_MAX = 50;

export interface SendRequest {
  to: string;
  type?: string;
  text?: string;
  media?: MediaInput;
  caption?: string;
  replyTo?: string;
  mentions?: string[];
  location?: LocationInput;
  contact?: ContactInput;
  emoji?: string;
}

/** What a valid request becomes: the message without bytes, and its media (decoded, or a URL). */
export interface CheckedRequest {
  draft: MessageDraft;
  media:
    | null
    | { kind: "inline"; data: Buffer; mimetype: string; filename?: string }
    | { kind: "url"; url: string; mimetype?: string; filename?: string };
}

const reject = (message: string, type: string, data?: unknown, code?: number) =>
  new MessageRejectedError(message, type, data, code);

export function isRecipient(to: string): boolean {
  return CHAT_ID.test(to) || (PHONE.test(to) && digitsOf(to).length >= 6 && digitsOf(to).length <= 16);
}

function digitsOf(phone: string): string {
  return phone.replace(/[^0-9]/g, "");
}

/** A fetched file's name: the URL's last path segment, decoded (as it is when it holds a stray `%`). */
export function filenameOf(url: string): string | undefined {
  const last = new URL(url).pathname.split("/").pop();
  if (!last) return undefined;
  let name = last;
  try {
    name = decodeURIComponent(last);
  } catch {
    // Not a valid escape (`100%.pdf`): the segment is the name.
  }
  return name.slice(0, 255);
}

/** `type/subtype` in lower case, parameters (`; codecs=opus`) dropped; null when it is not one. */
export function normalMimetype(raw: unknown): string | null {
  if (typeof raw !== "string") return null;
  const m = raw.split(";")[0].trim().toLowerCase();
  return MIMETYPE.test(m) ? m : null;
}

/** Throws MEDIA_TYPE_MISMATCH unless `mimetype` suits a message of `type`. */
export function checkMimetype(type: MessageType, mimetype: string): void {
  if (!ACCEPTED[type]?.(mimetype))
    throw reject(
      `A${type === "image" ? "n" : ""} ${type} message cannot carry ${mimetype}`,
      ERR_MEDIA_TYPE_MISMATCH,
      {
        field: "media.mimetype",
        type,
        mimetype,
      },
    );
}

/** The mimetype the first bytes of a file show (the common formats only), or null. */
export function sniffMimetype(data: Buffer): string | null {
  const head = (n: number, from = 0) => data.subarray(from, from + n).toString("latin1");
  if (data[0] === 0xff && data[1] === 0xd8 && data[2] === 0xff) return "image/jpeg";
  if (head(8) === "\x89PNG\r\n\x1a\n") return "image/png";
  if (head(4) === "RIFF" && head(4, 8) === "WEBP") return "image/webp";
  if (head(4) === "OggS") return "audio/ogg";
  if (head(4) === "%PDF") return "application/pdf";
  if (head(4, 4) === "ftyp") return head(3, 8) === "3gp" ? "video/3gpp" : "video/mp4";
  return null;
}

/** Throws MEDIA_TYPE_MISMATCH when the bytes are recognisably of another kind than declared. */
export function checkContent(type: MessageType, declared: string, data: Buffer): void {
  const seen = sniffMimetype(data);
  if (!seen || type === "document") return;
  const family = (m: string) => m.split("/")[0];
  // An MP4 container holds audio as well as video: only its family is compared.
  const mp4Audio = seen === "video/mp4" && declared.startsWith("audio/");
  if (family(seen) !== family(declared) && !mp4Audio)
    throw reject(`The ${type} file is ${seen}, not ${declared}`, ERR_MEDIA_TYPE_MISMATCH, {
      field: "media",
      declared,
      detected: seen,
    });
}

/** Decodes standard base64 (a `data:<mimetype>;base64,` prefix is allowed); INVALID_MEDIA when it is
 * not base64, MEDIA_TOO_LARGE when it decodes to more than `maxBytes` (checked before decoding). */
export function decodeBase64(text: string, maxBytes: number): { data: Buffer; mimetype?: string } {
  let body = text;
  let mimetype: string | undefined;
  const prefix = /^data:([^;,]+);base64,/.exec(text);
  if (prefix) {
    mimetype = prefix[1];
    body = text.slice(prefix[0].length);
  }
  body = body.replace(/\s+/g, "");
  if (body.length === 0 || body.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(body))
    throw reject("media.base64 is not valid base64", ERR_INVALID_MEDIA, { field: "media.base64" });
  const size = (body.length / 4) * 3 - (body.endsWith("==") ? 2 : body.endsWith("=") ? 1 : 0);
  if (size > maxBytes) throw tooLarge(size, maxBytes);
  return { data: Buffer.from(body, "base64"), mimetype };
}

export function tooLarge(size: number | null, maxBytes: number): MessageRejectedError {
  return reject(
    `Media larger than MEDIA_MAX_BYTES (${maxBytes} bytes)`,
    ERR_MEDIA_TOO_LARGE,
    { field: "media", size, limit: maxBytes },
    413,
  );
}

/** A missing, malformed or stray field: the generic VALIDATION_ERROR, shaped like the gateway's. */
export function invalidField(field: string, message: string): ValidationError {
  return new ValidationError(message, [{ field, type: "message", message }]);
}

function checkMedia(
  type: MessageType,
  media: MediaInput | undefined,
  maxBytes: number,
): CheckedRequest["media"] {
  if (!media || typeof media !== "object")
    throw invalidField("media", `A ${type} message needs media ({url} or {base64, mimetype})`);
  if (media.filename !== undefined && typeof media.filename !== "string")
    throw invalidField("media.filename", "media.filename must be a string");
  const filename = media.filename?.slice(0, 255);
  if ("url" in media && media.url !== undefined) {
    if ("base64" in media) throw invalidField("media", "media has either url or base64, not both");
    let url: URL;
    try {
      url = new URL(String(media.url));
    } catch {
      throw invalidField("media.url", "media.url is not a URL");
    }
    if (url.protocol !== "http:" && url.protocol !== "https:")
      throw invalidField("media.url", "media.url must be http or https");
    let mimetype: string | undefined;
    if (media.mimetype !== undefined) {
      mimetype = normalMimetype(media.mimetype) ?? undefined;
      if (!mimetype)
        throw reject("media.mimetype is not a mimetype", ERR_MEDIA_TYPE_MISMATCH, {
          field: "media.mimetype",
        });
      checkMimetype(type, mimetype);
    }
    return { kind: "url", url: url.href, mimetype, filename };
  }
  if (!("base64" in media) || typeof media.base64 !== "string")
    throw invalidField("media", "media needs url, or base64 with mimetype");
  const decoded = decodeBase64(media.base64, maxBytes);
  const mimetype = normalMimetype(media.mimetype ?? decoded.mimetype);
  if (!mimetype)
    throw reject("media.mimetype is missing or not a mimetype", ERR_MEDIA_TYPE_MISMATCH, {
      field: "media.mimetype",
    });
  checkMimetype(type, mimetype);
  checkContent(type, mimetype, decoded.data);
  return { kind: "inline", data: decoded.data, mimetype, filename };
}

function checkLocation(loc: LocationInput | undefined): LocationInput {
  const ok = (v: unknown, limit: number) =>
    typeof v === "number" && Number.isFinite(v) && Math.abs(v) <= limit;
  if (!loc || typeof loc !== "object" || !ok(loc.latitude, 90) || !ok(loc.longitude, 180))
    throw invalidField("location", "A location message needs location {latitude (±90), longitude (±180)}");
  const text = (v: unknown) => (typeof v === "string" && v ? v.slice(0, 256) : undefined);
  return {
    latitude: loc.latitude,
    longitude: loc.longitude,
    name: text(loc.name),
    address: text(loc.address),
  };
}

function checkContact(contact: ContactInput | undefined): ContactInput {
  if (!contact || typeof contact !== "object" || typeof contact.name !== "string" || !contact.name.trim())
    throw invalidField("contact", "A contact message needs contact {name, phoneNumber}");
  if (typeof contact.phoneNumber !== "string" || !PHONE.test(contact.phoneNumber))
    throw invalidField("contact.phoneNumber", "contact.phoneNumber is not a phone number");
  return { name: contact.name.trim().slice(0, 256), phoneNumber: contact.phoneNumber };
}

/** Checks a send request; throws a MessageRejectedError naming the first problem. */
export function checkSendRequest(p: SendRequest, limits: { mediaMaxBytes: number }): CheckedRequest {
  const type = (p.type ?? "text") as MessageType;
  if (!MESSAGE_TYPES.includes(type))
    throw reject(
      `Unknown message type '${p.type}' (known: ${MESSAGE_TYPES.join(", ")})`,
      ERR_UNSUPPORTED_MESSAGE_TYPE,
      {
        field: "type",
        type: p.type,
        known: MESSAGE_TYPES,
      },
    );
  const draft: MessageDraft = { to: p.to, type };
  if (p.replyTo !== undefined) draft.replyTo = p.replyTo;
  if (p.mentions?.length) draft.mentions = [...p.mentions];
  let media: CheckedRequest["media"] = null;
  if (type === "text") {
    if (!p.text) throw invalidField("text", "A text message needs text");
    draft.text = p.text;
  } else if (MEDIA_TYPES.includes(type)) {
    media = checkMedia(type, p.media, limits.mediaMaxBytes);
    if (p.caption !== undefined) {
      if (type === "audio") throw invalidField("caption", "An audio message has no caption");
      draft.caption = p.caption;
    }
  } else if (type === "location") {
    draft.location = checkLocation(p.location);
  } else if (type === "contact") {
    draft.contact = checkContact(p.contact);
  } else {
    if (!p.replyTo)
      throw invalidField("replyTo", "A reaction needs replyTo (the id of the message reacted to)");
    if (typeof p.emoji !== "string" || p.emoji.length > EMOJI_MAX)
      throw invalidField("emoji", 'A reaction needs emoji (one emoji; "" takes the reaction back)');
    draft.emoji = p.emoji;
  }
  const stray = (["text", "media", "caption", "location", "contact", "emoji"] as const).find(
    (f) => p[f] !== undefined && !(f in draft) && !(f === "media" && media),
  );
  if (stray) throw invalidField(stray, `A ${type} message has no ${stray}`);
  if (!isRecipient(p.to))
    throw reject(`'${p.to}' is neither a phone number nor a chat id`, ERR_INVALID_RECIPIENT, {
      field: "to",
      to: p.to,
    });
  for (const m of p.mentions ?? [])
    if (!isRecipient(m))
      throw reject(`Mention '${m}' is neither a phone number nor a chat id`, ERR_INVALID_RECIPIENT, {
        field: "mentions",
        to: m,
      });
  return { draft, media };
}

/**
 * A digest of what a request asks to send: a key reused for another message is refused. The media's
 * mimetype and filename count (the same bytes under another name or type are another message). They
 * follow a NUL, which a parsed URL never holds (the bytes' hash has a fixed length), so no two requests
 * run together; and they are added only when present, so a request without them keeps the digest it
 * had before they counted (records stored then still match).
 */
export function requestDigest(
  draft: MessageDraft,
  media: { data?: Buffer; url?: string; mimetype?: string; filename?: string } | null,
): string {
  const h = createHash("sha256").update(JSON.stringify(draft));
  if (media?.data) h.update(createHash("sha256").update(media.data).digest());
  if (media?.url) h.update(media.url);
  if (media && (media.mimetype !== undefined || media.filename !== undefined))
    h.update("\0").update(
      JSON.stringify({ mimetype: media.mimetype ?? null, filename: media.filename ?? null }),
    );
  return h.digest("hex").slice(0, 32);
}
