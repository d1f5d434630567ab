// Every NATS connection of a node writes what the callbacks of one event-loop turn published in one
// socket write (src/nats-write-batching.ts), and loses nothing by it: not a message published just
// before a close, not the order of messages. Real nats-server (the run's).
import { strict as assert } from "node:assert";
import { connect, type NatsConnection } from "nats";
import { batchNatsWrites } from "../../../src/nats-write-batching.ts";
import { testEnv } from "../../support/env.ts";
import { waitFor } from "../../support/wait.ts";

/** The socket writes of a connection, counted (nats.js's transport, reached through its internals). */
function countWrites(nc: NatsConnection): { count: number } {
  const transport = (nc as unknown as { protocol: { transport: { send(frame: Uint8Array): void } } }).protocol
    .transport;
  const counter = { count: 0 };
  const send = transport.send.bind(transport);
  transport.send = (frame) => {
    counter.count++;
    send(frame);
  };
  return counter;
}

describe("NATS writes batched per event-loop turn", function () {
  this.timeout(20000);
  const open: NatsConnection[] = [];
  const connection = async () => {
    const nc = await connect({ servers: testEnv.natsUrl });
    open.push(nc);
    return nc;
  };
  afterEach(async () => {
    await Promise.all(open.splice(0).map((nc) => nc.close().catch(() => undefined)));
  });

  it("applies to this version of nats.js", () => {
    assert.equal(batchNatsWrites(), true);
  });

  it("20 publishes from 20 callbacks of one turn leave in one write, all delivered in order", async () => {
    batchNatsWrites();
    const [pub, sub] = [await connection(), await connection()];
    const got: string[] = [];
    const s = sub.subscribe("batching.order", { callback: (_e, m) => got.push(m.string()) });
    await sub.flush();
    await pub.flush();
    const writes = countWrites(pub);
    // Timers due together run in one timers phase, each callback followed by its microtasks: the
    // gateway's case (one socket callback per HTTP request). Unbatched, that is 20 writes.
    const fired = Array.from(
      { length: 20 },
      (_, i) => new Promise<void>((r) => setTimeout(() => (pub.publish("batching.order", `m${i}`), r()), 0)),
    );
    await Promise.all(fired);
    await waitFor(() => got.length === 20, { what: "the 20 messages" });
    assert.deepEqual(
      got,
      Array.from({ length: 20 }, (_, i) => `m${i}`),
    );
    assert.ok(writes.count <= 2, `${writes.count} socket writes for 20 publishes of one turn`);
    s.unsubscribe();
  });

  it("a message published just before close() is delivered", async () => {
    batchNatsWrites();
    const [pub, sub] = [await connection(), await connection()];
    const got: string[] = [];
    sub.subscribe("batching.close", { callback: (_e, m) => got.push(m.string()) });
    await sub.flush();
    pub.publish("batching.close", "last words");
    await pub.close();
    await waitFor(() => got.length === 1, { what: "the message published before close" });
    assert.equal(got[0], "last words");
  });

  it("a lone request is answered (nothing waits for a turn that never comes)", async () => {
    batchNatsWrites();
    const [client, server] = [await connection(), await connection()];
    server.subscribe("batching.echo", { callback: (_e, m) => m.respond(m.data) });
    await server.flush();
    const reply = await client.request("batching.echo", new TextEncoder().encode("ping"), { timeout: 2000 });
    assert.equal(reply.string(), "ping");
  });
});
