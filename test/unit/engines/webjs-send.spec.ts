import { strict as assert } from "node:assert";
import wweb from "whatsapp-web.js";
import { documentNameOf, sendArgsOf, vcardOf } from "../../../src/engines/webjs/send.ts";

describe("engines/webjs/send", () => {
  const classes = { MessageMedia: wweb.MessageMedia, Location: wweb.Location };
  const pdf = Buffer.from("%PDF-1.4\n");

  it("a document keeps its filename, or gets one from its mimetype (WhatsApp would show 'null')", () => {
    assert.equal(documentNameOf("application/pdf", "invoice.pdf"), "invoice.pdf");
    assert.equal(documentNameOf("application/pdf"), "document.pdf");
    assert.equal(documentNameOf("text/csv; charset=utf-8"), "document.csv");
    assert.equal(
      documentNameOf("application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
      "document",
    );
    const { content, options } = sendArgsOf(
      {
        to: "15550001111",
        type: "document",
        media: { data: pdf, mimetype: "application/pdf" },
        caption: "c",
      },
      classes,
    );
    assert.equal((content as wweb.MessageMedia).filename, "document.pdf");
    assert.equal(options.sendMediaAsDocument, true);
    assert.equal(options.caption, "c");
  });

  it("audio goes as a voice note; replies and mentions become whatsapp-web.js options", () => {
    const { options } = sendArgsOf(
      {
        to: "15550001111",
        type: "audio",
        media: { data: pdf, mimetype: "audio/ogg" },
        replyTo: "true_1@c.us_3EB0",
        mentions: ["+1 555 000 2222"],
      },
      classes,
    );
    assert.equal(options.sendAudioAsVoice, true);
    assert.equal(options.quotedMessageId, "true_1@c.us_3EB0");
    assert.deepEqual(options.mentions, ["15550002222@c.us"]);
  });

  it("a contact is a vCard with a tappable waid", () => {
    assert.match(
      vcardOf("Ann, B", "+1 555 000 1111"),
      /FN:Ann\\, B\nTEL;type=CELL;type=VOICE;waid=15550001111:\+15550001111/,
    );
  });
});
