// One delivery attempt ends in time: a receiver that never answers is a timeout, one that answers 2xx
// has accepted the event however slowly its body comes, a node that stops aborts its attempts (not
// counted as failures), and an attempt leaves nothing behind on the node's signal once it ended.
import { strict as assert } from "node:assert";
import { getEventListeners } from "node:events";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { AddressPolicy } from "../../../src/net/address-guard.ts";
import { attemptDelivery, type AttemptOptions } from "../../../src/webhooks/http-delivery.ts";
import { waitFor } from "../../support/wait.ts";
import { outboxRow } from "./fixtures.ts";

describe("webhooks: one delivery attempt", () => {
  let server: Server;
  let url = "";
  /** Requests the receiver holds without answering, and whether each was closed by the sender. */
  const held: { req: IncomingMessage; closed: boolean }[] = [];
  let answer: "200" | "never" | "200, body never ends" | "200, 1 MB body" | "500, text" = "200";
  const policy = new AddressPolicy("127.0.0.1");
  const attempt = (opts: Partial<AttemptOptions>) =>
    attemptDelivery(outboxRow(), { url, secret: "s", attempt: 1, timeoutMs: 30000, policy, ...opts });

  before(async () => {
    server = createServer((req, res) => {
      req.resume();
      if (answer === "200") return void res.end("ok");
      if (answer === "500, text") return void res.writeHead(500).end("receiver says no");
      if (answer === "200, 1 MB body") return void res.writeHead(200).end("x".repeat(1 << 20));
      const entry = { req, closed: false };
      if (answer === "200, body never ends") res.writeHead(200).write("accepted; more follows");
      held.push(entry);
      res.once("close", () => (entry.closed = true));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  after(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  beforeEach(() => {
    answer = "200";
    held.length = 0;
  });

  it("a receiver that never answers is a timeout after timeoutMs, and the request is dropped", async () => {
    answer = "never";
    const t0 = Date.now();
    const result = await attempt({ timeoutMs: 300 });
    assert.deepEqual(result, { ok: false, statusCode: null, error: "timeout after 300 ms" });
    assert.ok(Date.now() - t0 >= 290, `ended after ${Date.now() - t0} ms`);
    // On a loaded machine the request may not have reached the receiver in 300 ms; if it did, it is
    // dropped (the next test waits for it to arrive before stopping it).
    await waitFor(() => held.every((h) => h.closed), { what: "the receiver to see the request dropped" });
  });

  it("a 2xx whose body does not end is a success at once, and the connection is dropped later", async () => {
    answer = "200, body never ends";
    const t0 = Date.now();
    assert.deepEqual(await attempt({ timeoutMs: 500 }), { ok: true, statusCode: 200 });
    assert.ok(Date.now() - t0 < 500, `answered after ${Date.now() - t0} ms`);
    await waitFor(() => held[0]?.closed, { what: "the receiver to see the connection dropped" });
  });

  it("a 2xx with a long body is a success; a non-2xx answer's text is kept in the error", async () => {
    answer = "200, 1 MB body";
    assert.deepEqual(await attempt({}), { ok: true, statusCode: 200 });
    answer = "500, text";
    assert.deepEqual(await attempt({}), { ok: false, statusCode: 500, error: "HTTP 500: receiver says no" });
  });

  it("the node's signal aborts an attempt under way: aborted, not a failure of the receiver", async () => {
    answer = "never";
    const node = new AbortController();
    const attempted = attempt({ signal: node.signal });
    await waitFor(() => held.length === 1, { what: "the request at the receiver" });
    node.abort();
    assert.deepEqual(await attempted, { ok: false, statusCode: null, error: "aborted", aborted: true });
    await waitFor(() => held[0]!.closed, { what: "the receiver to see the request dropped" });
  });

  it("an already stopped node sends nothing", async () => {
    const node = new AbortController();
    node.abort();
    assert.deepEqual(await attempt({ signal: node.signal }), {
      ok: false,
      statusCode: null,
      error: "aborted",
      aborted: true,
    });
    assert.equal(held.length, 0);
  });

  it("attempts that ended leave no listener on the node's signal", async () => {
    const node = new AbortController();
    const results = await Promise.all(Array.from({ length: 20 }, () => attempt({ signal: node.signal })));
    assert.ok(
      results.every((r) => r.ok && r.statusCode === 200),
      JSON.stringify(results[0]),
    );
    answer = "never";
    assert.deepEqual(await attempt({ signal: node.signal, timeoutMs: 100 }), {
      ok: false,
      statusCode: null,
      error: "timeout after 100 ms",
    });
    assert.equal(getEventListeners(node.signal, "abort").length, 0);
  });
});
