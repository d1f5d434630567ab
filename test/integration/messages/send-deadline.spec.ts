// A send whose request timed out on a real cluster (REQUEST_TIMEOUT_MS 2 s, a media URL that answers
// only when the test lets it): without a key the client, told it failed, sends again, so the message
// must never leave afterwards; it fails SEND_DEADLINE_EXCEEDED halfway through the request's time, its
// media fetch given up. With a key it finishes after the timeout, and a retry answers its result.
import { strict as assert } from "node:assert";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { AccountView } from "../../../src/accounts/types.ts";
import { GatewayCluster } from "../api/helpers.ts";
import { LONG_QR } from "../events/support.ts";
import { waitFor } from "../../support/wait.ts";
import { assertError, connected, send, sent } from "./support.ts";

const PDF = Buffer.from("%PDF-1.4 slow to come");

/** One request to the held media server: answered when the test says, or dropped by the client. */
interface HeldRequest {
  path: string;
  res: ServerResponse;
  /** The client closed the connection before the answer. */
  dropped: boolean;
}

describe("messages: a send whose request timed out", function () {
  this.timeout(60000);
  let gc: GatewayCluster;
  let key: string;
  let account: AccountView;
  let media: Server;
  let mediaUrl: string;
  const held: HeldRequest[] = [];

  before(async () => {
    media = createServer((req, res) => {
      const request: HeldRequest = { path: req.url ?? "", res, dropped: false };
      res.once("close", () => (request.dropped = !res.writableFinished));
      held.push(request);
    });
    await new Promise<void>((r) => media.listen(0, "127.0.0.1", r));
    mediaUrl = `http://127.0.0.1:${(media.address() as AddressInfo).port}`;
    gc = new GatewayCluster({
      qr: LONG_QR,
      rateLimitPerMinute: 100000,
      requestTimeoutMs: 2000,
      // Longer than the request: what would let the send leave after its request timed out.
      mediaFetchTimeoutMs: 20000,
      simulatedAckMs: 30,
      webhookAllowPrivate: "127.0.0.1",
    });
    await gc.addGateway("gw");
    await gc.addWorker("w1");
    await gc.start();
    key = (await gc.createKey("late")).key;
    account = await connected(gc, "late", "sender");
  });
  after(async () => {
    for (const h of held) h.res.destroy();
    await new Promise((r) => media?.close(r));
    await gc?.stop();
  });

  const heldAt = (path: string) =>
    waitFor(() => held.find((h) => h.path === path), { what: `the media request ${path}` });
  const answer = (h: HeldRequest) => {
    if (!h.res.destroyed)
      h.res.writeHead(200, { "content-type": "application/pdf", "content-length": PDF.length }).end(PDF);
  };
  const sentWith = (caption: string) => sent(account.id).filter((m) => m.caption === caption);

  it("without a key: refused SEND_DEADLINE_EXCEEDED, and the media coming later sends nothing", async () => {
    const res = await send(gc.gw, key, account.id, {
      to: "4915100000002",
      type: "document",
      media: { url: `${mediaUrl}/keyless.pdf` },
      caption: "keyless",
    });
    assert.notEqual(res.status, 200, String(res.body));
    // The client was told the send failed; the media server answers now.
    const request = await heldAt("/keyless.pdf");
    answer(request);
    const outcome = await waitFor(
      () => (sentWith("keyless").length > 0 ? "sent" : request.dropped ? "fetch given up" : null),
      { what: "the message sent, or its media fetch given up" },
    );
    assert.equal(outcome, "fetch given up", "the message left after its request had failed");
    assertError(res, 504, "SEND_DEADLINE_EXCEEDED");
    assert.equal(sentWith("keyless").length, 0);
  });

  it("with a key: it finishes after the request timed out, and a retry answers its result", async () => {
    const body = {
      to: "4915100000002",
      type: "document",
      media: { url: `${mediaUrl}/keyed.pdf` },
      caption: "keyed",
    };
    const headers = { "Idempotency-Key": "late-keyed" };
    const first = await send(gc.gw, key, account.id, body, headers);
    assertError(first, 504, "REQUEST_TIMEOUT");
    answer(await heldAt("/keyed.pdf"));
    const message = await waitFor(() => sentWith("keyed")[0], { what: "the keyed send to leave" });
    const retry = await send(gc.gw, key, account.id, body, headers);
    assert.equal(retry.status, 200, String(retry.body));
    assert.deepEqual([retry.json.id, retry.json.status, retry.json.duplicate], [message.id, "sent", true]);
    assert.equal(sentWith("keyed").length, 1);
  });
});
