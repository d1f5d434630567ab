// SEND_MIN_GAP_MS on a real cluster: a burst from one account leaves the engine one send at a time, at
// least the gap apart; another account is not held up; the node's send queue depth is exported at
// GET /metrics while the burst waits.
import { strict as assert } from "node:assert";
import type { AccountView } from "../../../src/accounts/types.ts";
import { METRICS } from "../../../src/gateway/metrics.ts";
import { GatewayCluster } from "../api/helpers.ts";
import { connectedAccount, LONG_QR } from "../events/support.ts";
import { waitFor } from "../../support/wait.ts";
import { send, sent } from "./support.ts";

const GAP = 300;

describe("messages: outbound pacing (SEND_MIN_GAP_MS)", function () {
  this.timeout(60000);
  let gc: GatewayCluster;
  let key: string;
  let a: AccountView;
  let b: AccountView;

  before(async () => {
    gc = new GatewayCluster({
      qr: LONG_QR,
      rateLimitPerMinute: 100000,
      sendMinGapMs: GAP,
      simulatedAckMs: 20,
    });
    await gc.addGateway("gw");
    await gc.addWorker("w1");
    await gc.start();
    key = (await gc.createKey("pace")).key;
    a = await connectedAccount(gc.gw.broker, "pace", "a");
    b = await connectedAccount(gc.gw.broker, "pace", "b");
  });
  after(async () => gc?.stop());

  const depth = () =>
    (gc.workers[0].metrics.getMetric(METRICS.sendQueue)?.get()?.value as number | undefined) ?? 0;

  it("a burst of 4 leaves ≥ the gap apart, each once; another account's send goes at once", async () => {
    const before = sent(a.id).length;
    const burst = Array.from({ length: 4 }, (_, i) =>
      send(
        gc.gw,
        key,
        a.id,
        { to: "4915100000002", text: `burst ${i}` },
        { "Idempotency-Key": `burst-${i}` },
      ),
    );
    await waitFor(() => depth() >= 2, { what: "sends waiting in the queue" });
    const metrics = await gc.gw.call("GET", "/metrics");
    assert.match(metrics.body.toString(), /^switchboard_send_queue_depth\{[^}]*\} [1-9]/m);
    const started = Date.now();
    const other = await send(gc.gw, key, b.id, { to: "4915100000002", text: "not held up" });
    assert.equal(other.json.status, "sent");
    assert.ok(Date.now() - started < GAP, "another account waits for no one");
    const answers = await Promise.all(burst);
    for (const r of answers) assert.equal(r.json.status, "sent", String(r.body));
    const out = sent(a.id).slice(before);
    assert.equal(out.length, 4);
    assert.equal(new Set(out.map((m) => m.text)).size, 4);
    for (let i = 1; i < out.length; i++)
      assert.ok(out[i].at - out[i - 1].at >= GAP - 5, `gap ${i}: ${out[i].at - out[i - 1].at} ms`);
    await waitFor(() => depth() === 0, { what: "the queue to drain" });
  });
});
