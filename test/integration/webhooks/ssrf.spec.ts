// Webhook requests connect only to addresses the policy allows, decided on the address resolved
// (not only on the URL's text), and read at most 4 KB of an answer.
import { strict as assert } from "node:assert";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { AddressPolicy } from "../../../src/net/address-guard.ts";
import { attemptDelivery, RESPONSE_BODY_LIMIT } from "../../../src/webhooks/http-delivery.ts";
import { outboxRow } from "./fixtures.ts";

describe("webhooks: outgoing requests and the address guard", () => {
  let server: Server;
  let hits = 0;
  let answerBytes = 0;
  let port = 0;
  let written: Promise<number> = Promise.resolve(0);
  const row = outboxRow();
  const attempt = (url: string, policy?: AddressPolicy) =>
    attemptDelivery(row, { url, secret: "s", attempt: 1, timeoutMs: 5000, policy });

  before(async () => {
    server = createServer((req, res) => {
      hits++;
      req.resume();
      res.writeHead(500, { "content-type": "text/plain" });
      // Written as the client takes it (drain by drain): `flushed` is what reached the client's side.
      let flushed = 0;
      let queued = 0;
      written = new Promise((resolve) => res.once("close", () => resolve(flushed)));
      const chunk = Buffer.alloc(64 * 1024, "x");
      const pump = () => {
        while (queued < answerBytes && !res.destroyed) {
          queued += chunk.length;
          if (!res.write(chunk, (err) => !err && (flushed += chunk.length)))
            return void res.once("drain", pump);
        }
        res.end();
      };
      pump();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => {
    hits = 0;
    answerBytes = 0;
  });

  it("refuses loopback by literal address and by a name that resolves to it; nothing reaches the receiver", async () => {
    for (const url of [
      `http://127.0.0.1:${port}/`,
      `http://localhost:${port}/`,
      `http://[::ffff:127.0.0.1]:${port}/`,
    ]) {
      const res = await attempt(url);
      assert.equal(res.ok, false, url);
      assert.match((res as { error: string }).error, /address not allowed: .*loopback address/, url);
    }
    assert.equal(hits, 0);
  });

  it("an allow-listed address is delivered to", async () => {
    const res = await attempt(`http://localhost:${port}/`, new AddressPolicy("127.0.0.1,::1"));
    assert.equal(res.ok, false);
    assert.equal((res as { statusCode: number }).statusCode, 500);
    assert.equal(hits, 1);
  });

  it("keeps at most 4 KB of a receiver's answer", async () => {
    answerBytes = 64 * 1024 * 1024;
    const res = await attempt(`http://127.0.0.1:${port}/`, new AddressPolicy("127.0.0.1"));
    assert.equal((res as { statusCode: number }).statusCode, 500);
    const error = (res as { error: string }).error;
    assert.ok(error.length < RESPONSE_BODY_LIMIT, `${error.length} characters kept`);
    // The client dropped the connection instead of reading the rest: the receiver could not send it.
    const sent = await written;
    assert.ok(sent < 16 * 1024 * 1024, `the receiver sent ${sent} bytes of 64 MB`);
  });
});
