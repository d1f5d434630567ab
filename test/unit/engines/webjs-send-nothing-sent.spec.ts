// whatsapp-web.js 1.34.7's Client.sendMessage answers null or undefined, instead of a message, when it
// sends nothing: the webjs engine's send says why as a 4xx with a stable type (not a TypeError → 500).
// Run on the library's own sendMessage with a stand-in page: no Chromium needed.
import { strict as assert } from "node:assert";
import { Errors } from "moleculer";
import wweb from "whatsapp-web.js";
import { sendThrough } from "../../../src/engines/webjs/send.ts";
import type { OutboundMessage } from "../../../src/messages/types.ts";

describe("engines/webjs/send: nothing sent", () => {
  const classes = { MessageMedia: wweb.MessageMedia, Location: wweb.Location };
  const pdf = Buffer.from("%PDF-1.4\n");
  const quiet = console.warn;
  // The library warns on the console as it refuses a channel's message.
  beforeEach(() => (console.warn = () => undefined));
  afterEach(() => (console.warn = quiet));

  /** whatsapp-web.js's own Client.sendMessage on a stand-in page whose script in the browser (find
   * the chat, send) answers `inPage`; `evaluated` counts the page calls. */
  function clientWhosePageAnswers(inPage: unknown): { client: wweb.Client; evaluated: () => number } {
    let calls = 0;
    const client = Object.create(wweb.Client.prototype) as wweb.Client;
    client.pupPage = {
      evaluate: async () => {
        calls++;
        return inPage;
      },
    } as unknown as wweb.Client["pupPage"];
    return { client, evaluated: () => calls };
  }

  it("no chat found or opened (undefined): 422 INVALID_RECIPIENT naming the chat", async () => {
    const { client } = clientWhosePageAnswers(null); // window.WWebJS.getChat found none
    const m: OutboundMessage = { to: "+49 151 0000 0001", type: "text", text: "hi" };
    await assert.rejects(sendThrough(client, m, classes), (err: Errors.MoleculerError) => {
      assert.deepEqual([err.name, err.code, err.type], ["MessageRejectedError", 422, "INVALID_RECIPIENT"]);
      assert.match(err.message, /no chat '4915100000001@c\.us'/);
      assert.deepEqual(err.data, { field: "to", to: m.to });
      return true;
    });
  });

  it("a kind of message a channel does not take (null): 422 UNSUPPORTED_MESSAGE_TYPE, the page never asked", async () => {
    const { client, evaluated } = clientWhosePageAnswers({});
    const doc: OutboundMessage = {
      to: "120363000000000001@newsletter",
      type: "document",
      media: { data: pdf, mimetype: "application/pdf" },
    };
    await assert.rejects(sendThrough(client, doc, classes), (err: Errors.MoleculerError) => {
      assert.deepEqual(
        [err.code, err.type, (err.data as { field: string }).field],
        [422, "UNSUPPORTED_MESSAGE_TYPE", "type"],
      );
      assert.match(err.message, /type 'document' \('120363000000000001@newsletter'/);
      return true;
    });
    const place: OutboundMessage = { to: doc.to, type: "location", location: { latitude: 1, longitude: 2 } };
    await assert.rejects(sendThrough(client, place, classes), {
      type: "UNSUPPORTED_MESSAGE_TYPE",
      data: { field: "type", type: "location", to: doc.to },
    });
    assert.equal(evaluated(), 0, "refused before anything went to the page");
  });
});
