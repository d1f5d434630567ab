// The engine contract's check of a send from the other side: what WhatsApp (the simulated engine's
// record, or the WhatsApp Web stand-in's) received of each message, against what was sent.
import { strict as assert } from "node:assert";
import type { OutboundMessage } from "../../src/messages/types.ts";

/** One message as the other side received it, in OutboundMessage's terms (a reaction has no id). */
export interface DeliveredMessage {
  id?: string;
  to: string;
  type: OutboundMessage["type"];
  text?: string;
  caption?: string;
  media?: { mimetype: string; filename?: string; size: number };
  location?: { latitude: number; longitude: number };
  contact?: { name: string };
  mentions?: string[];
  replyTo?: string;
  emoji?: string;
}

/** "+1 555-000", "1555000@c.us" → "1555000". */
const digitsOf = (id: string) => id.replace(/@.*/, "").replace(/[^0-9]/g, "");

/** Asserts that `got` is what sending `sent` should deliver. */
export function assertDelivered(
  got: DeliveredMessage | undefined,
  sent: OutboundMessage,
  what: string,
): void {
  assert.ok(got, `${what}: received`);
  assert.equal(digitsOf(got.to), digitsOf(sent.to), `${what}: to`);
  assert.equal(got.type, sent.type, `${what}: type`);
  if (sent.text !== undefined) assert.equal(got.text, sent.text, `${what}: text`);
  if (sent.caption !== undefined) assert.equal(got.caption, sent.caption, `${what}: caption`);
  if (sent.media) {
    assert.equal(got.media?.mimetype, sent.media.mimetype, `${what}: mimetype`);
    assert.equal(got.media?.size, sent.media.data.length, `${what}: size of the bytes`);
    if (sent.media.filename) assert.equal(got.media?.filename, sent.media.filename, `${what}: filename`);
  }
  if (sent.location) {
    assert.equal(got.location?.latitude, sent.location.latitude, `${what}: latitude`);
    assert.equal(got.location?.longitude, sent.location.longitude, `${what}: longitude`);
  }
  if (sent.contact) assert.equal(got.contact?.name, sent.contact.name, `${what}: contact name`);
  if (sent.mentions)
    assert.deepEqual(got.mentions?.map(digitsOf), sent.mentions.map(digitsOf), `${what}: mentions`);
  if (sent.replyTo) assert.equal(got.replyTo, sent.replyTo, `${what}: quoted message`);
  if (sent.emoji !== undefined) assert.equal(got.emoji, sent.emoji, `${what}: emoji`);
}
