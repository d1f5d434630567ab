import { strict as assert } from "node:assert";
import { createHmac } from "node:crypto";
import { generateSecret, sign, verify } from "../../../src/webhooks/signing.ts";

describe("webhooks/signing", () => {
  const secret = "whsec_test";
  const body = '{"id":"evt_1","event":"account.status"}';

  it("signs HMAC-SHA256 over `timestamp.body`, hex, prefixed sha256=", () => {
    const expected = createHmac("sha256", secret).update(`1700000000.${body}`).digest("hex");
    assert.equal(sign(secret, 1700000000, body), `sha256=${expected}`);
  });

  it("verifies its own signature and rejects a changed body, timestamp, secret or a stale timestamp", () => {
    const now = 1700000000_000;
    const sig = sign(secret, 1700000000, body);
    assert.ok(verify(secret, "1700000000", body, sig, { now }));
    assert.ok(!verify(secret, "1700000000", body + " ", sig, { now }));
    assert.ok(!verify(secret, "1700000001", body, sig, { now }));
    assert.ok(!verify("other", "1700000000", body, sig, { now }));
    assert.ok(!verify(secret, "1700000000", body, sig, { now: now + 301_000 }));
    assert.ok(verify(secret, "1700000000", body, sig, { now: now + 301_000, toleranceSec: 0 }));
    assert.ok(!verify(secret, "1700000000", body, "sha256=00", { now }));
  });

  it("generates distinct secrets", () => {
    const a = generateSecret();
    assert.match(a, /^whsec_[A-Za-z0-9_-]{43}$/);
    assert.notEqual(a, generateSecret());
  });
});
