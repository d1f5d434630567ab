// Signatures of admin calls on the bus (src/admin-signature.ts): pure crypto, no servers.
import { strict as assert } from "node:assert";
import {
  adminKeyPair,
  adminKeysOf,
  decodePublicKey,
  encodePublicKey,
  NonceMemory,
  refusal,
  signAdminCall,
  SIGNATURE_MAX_AGE_MS,
} from "../../src/admin-signature.ts";

const KEY = "sb_admin_0123456789abcdef0123456789abcdef";
const CALL = { action: "cluster.drain", params: { nodeId: "w1", max: 2 }, caller: "gw", target: "w1" };

describe("admin signatures", () => {
  const { privateKey, publicKey } = adminKeyPair(KEY);

  it("the key pair follows from the admin key alone; its public half round-trips through ADMIN_PUBLIC_KEY", () => {
    const again = adminKeyPair(KEY);
    assert.equal(encodePublicKey(again.publicKey), encodePublicKey(publicKey));
    assert.notEqual(encodePublicKey(adminKeyPair(`${KEY}x`).publicKey), encodePublicKey(publicKey));
    const text = encodePublicKey(publicKey);
    assert.match(text, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(encodePublicKey(decodePublicKey(text)), text);
    assert.throws(() => decodePublicKey("abc"), /32 bytes/);
  });

  it("a node's keys: signing with ADMIN_API_KEY, verifying only with ADMIN_PUBLIC_KEY, refusing a mismatch", () => {
    const text = encodePublicKey(publicKey);
    assert.equal(adminKeysOf(KEY, "").privateKey !== null, true);
    const worker = adminKeysOf("", text);
    assert.equal(worker.privateKey, null);
    assert.equal(encodePublicKey(worker.publicKey!), text);
    assert.deepEqual(adminKeysOf("", ""), { privateKey: null, publicKey: null });
    assert.throws(
      () => adminKeysOf(KEY, encodePublicKey(adminKeyPair(`${KEY}x`).publicKey)),
      /not the public key of ADMIN_API_KEY/,
    );
  });

  it("accepts a signed call once, whatever the order of its params' keys", () => {
    const sig = signAdminCall(privateKey, CALL);
    const nonces = new NonceMemory();
    assert.equal(refusal(publicKey, sig, { ...CALL, params: { max: 2, nodeId: "w1" } }, nonces), null);
    assert.match(refusal(publicKey, sig, CALL, nonces) ?? "", /used already/);
  });

  it("refuses a signature moved to other params, action, caller or target, a forged one, an old one and none", () => {
    const sig = signAdminCall(privateKey, CALL);
    const check = (call: typeof CALL, s = sig) => refusal(publicKey, s, call, new NonceMemory());
    assert.match(check({ ...CALL, params: { nodeId: "w2", max: 2 } }) ?? "", /does not match/);
    assert.match(check({ ...CALL, action: "cluster.rebalance" }) ?? "", /does not match/);
    assert.match(check({ ...CALL, caller: "intruder" }) ?? "", /does not match/);
    assert.match(check({ ...CALL, target: "w2" }) ?? "", /does not match/);
    const otherKey = adminKeyPair(`${KEY}x`).privateKey;
    assert.match(check(CALL, signAdminCall(otherKey, CALL)) ?? "", /does not match/);
    assert.match(check(CALL, { ...sig, at: Date.now() - SIGNATURE_MAX_AGE_MS - 1000 }) ?? "", /too old/);
    assert.match(refusal(publicKey, undefined, CALL, new NonceMemory()) ?? "", /no admin signature/);
    assert.match(refusal(null, sig, CALL, new NonceMemory()) ?? "", /knows no admin public key/);
  });

  it("nonce memory forgets nonces once they are far older than any signature may be", () => {
    const m = new NonceMemory();
    const t0 = 1_000_000;
    assert.equal(m.firstTime("a", t0), true);
    assert.equal(m.firstTime("a", t0 + 1000), false);
    assert.equal(m.firstTime("b", t0 + 3 * SIGNATURE_MAX_AGE_MS), true);
    assert.equal(
      m.firstTime("a", t0 + 3 * SIGNATURE_MAX_AGE_MS),
      true,
      "forgotten: its signature is too old anyway",
    );
  });
});
