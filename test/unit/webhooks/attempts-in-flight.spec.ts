// The attempts a delivering node has in flight: counted per queue and per workspace until they settle.
import { strict as assert } from "node:assert";
import { AttemptsInFlight } from "../../../src/webhooks/attempts-in-flight.ts";
import { queueKey } from "../../../src/store/webhook-outbox-repo.ts";

function gate(): { run: Promise<void>; open: () => void } {
  let open!: () => void;
  const run = new Promise<void>((resolve) => (open = resolve));
  return { run, open };
}

describe("webhooks/attempts-in-flight", () => {
  it("counts attempts per queue, per workspace and per endpoint until each settles", async () => {
    const inFlight = new AttemptsInFlight();
    const a = gate();
    const b = gate();
    inFlight.add(queueKey("ep1", "acc1"), "ws1", a.run);
    inFlight.add(queueKey("ep1", "acc2"), "ws1", b.run);
    assert.equal(inFlight.size, 2);
    assert.equal(inFlight.of("ws1"), 2);
    assert.equal(inFlight.of("ws2"), 0);
    assert.ok(inFlight.has(queueKey("ep1", "acc1")));
    assert.ok(inFlight.hasEndpoint("ep1"));
    assert.ok(!inFlight.hasEndpoint("ep"), "an endpoint id that prefixes another is not it");

    a.open();
    await a.run;
    await Promise.resolve();
    assert.equal(inFlight.size, 1);
    assert.equal(inFlight.of("ws1"), 1);
    assert.ok(!inFlight.has(queueKey("ep1", "acc1")));

    let settled = false;
    const all = inFlight.settled().then(() => (settled = true));
    await Promise.resolve();
    assert.equal(settled, false, "settled waits for the attempt still in flight");
    b.open();
    await all;
    assert.equal(inFlight.size, 0);
    assert.equal(inFlight.of("ws1"), 0);
    assert.ok(!inFlight.hasEndpoint("ep1"));
  });
});
