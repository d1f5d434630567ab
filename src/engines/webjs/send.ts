// An OutboundMessage (src/messages/types.ts) sent through whatsapp-web.js: media as MessageMedia
// (audio as a voice note), a location as Location, a contact as a vCard, a reaction through the
// reacted-to message's react(); replyTo becomes quotedMessageId, mentions chat ids.
import type wweb from "whatsapp-web.js";
import {
  ERR_INVALID_RECIPIENT,
  ERR_UNSUPPORTED_MESSAGE_TYPE,
  MessageRejectedError,
  reactionTargetNotFound,
} from "../../errors.ts";
import type { OutboundMessage } from "../../messages/types.ts";
import { toChatId } from "./events.ts";

/** The whatsapp-web.js classes a send needs (loaded with the library, on first use). */
export interface WebjsClasses {
  MessageMedia: typeof wweb.MessageMedia;
  Location: typeof wweb.Location;
}

/** A vCard 3.0 of one contact, as WhatsApp shares contacts (`waid` makes it tappable). */
export function vcardOf(name: string, phoneNumber: string): string {
  const digits = phoneNumber.replace(/[^0-9]/g, "");
  const escaped = name.replace(/[\\;,]/g, (c) => `\\${c}`).replace(/\r?\n/g, " ");
  return [
    "BEGIN:VCARD",
    "VERSION:3.0",
    `FN:${escaped}`,
    `TEL;type=CELL;type=VOICE;waid=${digits}:+${digits}`,
    "END:VCARD",
  ].join("\n");
}

/** The name a document is shown under: its own, else one from its mimetype ("document.pdf"), since
 * WhatsApp Web names the file it uploads after MessageMedia's filename and would show "null". */
export function documentNameOf(mimetype: string, filename?: string): string {
  if (filename) return filename;
  const subtype = /^[a-z]+\/([a-z0-9]{1,5})(;|$)/.exec(mimetype.toLowerCase())?.[1];
  return subtype ? `document.${subtype}` : "document";
}

/** What client.sendMessage gets for `m`: content and options. */
export function sendArgsOf(
  m: OutboundMessage,
  classes: WebjsClasses,
): { content: wweb.MessageContent; options: wweb.MessageSendOptions } {
  const options: wweb.MessageSendOptions = {};
  if (m.replyTo) options.quotedMessageId = m.replyTo;
  if (m.mentions?.length) options.mentions = m.mentions.map(toChatId);
  let content: wweb.MessageContent;
  if (m.media) {
    const { data, mimetype } = m.media;
    const filename =
      m.type === "document" ? documentNameOf(mimetype, m.media.filename) : (m.media.filename ?? null);
    content = new classes.MessageMedia(mimetype, data.toString("base64"), filename, data.length);
    if (m.caption) options.caption = m.caption;
    if (m.type === "audio") options.sendAudioAsVoice = true;
    if (m.type === "document") options.sendMediaAsDocument = true;
  } else if (m.type === "location" && m.location) {
    const { latitude, longitude, name, address } = m.location;
    content = new classes.Location(latitude, longitude, { name, address });
  } else if (m.type === "contact" && m.contact) {
    content = vcardOf(m.contact.name, m.contact.phoneNumber);
    options.parseVCards = true;
  } else {
    content = m.text ?? "";
  }
  return { content, options };
}

/** Sends `m` on `client`; resolves with WhatsApp's id of the message (a reaction has none of its own:
 * it is named after the message reacted to). */
export async function sendThrough(
  client: wweb.Client,
  m: OutboundMessage,
  classes: WebjsClasses,
): Promise<{ id: string }> {
  if (m.type === "reaction") {
    // whatsapp-web.js answers null for an id it finds nowhere, and throws for one not shaped like an id.
    const target = await client.getMessageById(m.replyTo ?? "").catch((err: Error) => {
      if (/Invalid serialized message id/.test(err.message)) return null;
      throw err;
    });
    if (!target) throw reactionTargetNotFound(m.replyTo);
    await target.react(m.emoji ?? "");
    return { id: `reaction_${m.replyTo}_${Date.now()}` };
  }
  const { content, options } = sendArgsOf(m, classes);
  const chatId = toChatId(m.to);
  // Typed as a Message, but whatsapp-web.js 1.34 answers null or undefined without sending.
  const sent = (await client.sendMessage(chatId, content, options)) as wweb.Message | null | undefined;
  return { id: messageIdOf(sent, m, chatId) };
}

/**
 * The id of what client.sendMessage answered, or why it sent nothing (whatsapp-web.js 1.34.7,
 * Client.sendMessage): `null` for a kind of message a channel (`…@newsletter`) does not take (a
 * document, a location, a contact), before anything is sent; `undefined`
 * when WhatsApp Web found no chat to send to (and could not open one). (`undefined` also follows a
 * message WhatsApp Web took but then did not list, which has not been seen; a keyed send answers its
 * error again rather than risk sending twice.)
 */
export function messageIdOf(
  sent: { id: { _serialized: string } } | null | undefined,
  m: Pick<OutboundMessage, "to" | "type">,
  chatId: string,
): string {
  if (sent) return sent.id._serialized;
  if (sent === null) {
    throw new MessageRejectedError(
      `A channel does not take messages of type '${m.type}' ('${m.to}' takes text, image, video and ` +
        "audio); nothing was sent",
      ERR_UNSUPPORTED_MESSAGE_TYPE,
      { field: "type", type: m.type, to: m.to },
    );
  }
  throw new MessageRejectedError(
    `WhatsApp Web found no chat '${chatId}' to send to (not on WhatsApp, or a group or channel this ` +
      "account is not in); nothing was sent",
    ERR_INVALID_RECIPIENT,
    { field: "to", to: m.to },
  );
}
