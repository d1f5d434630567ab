// The at-rest envelope: AES-256-GCM under SECRETS_KEY, named by key id; older keys open, the current
// one seals; unknown keys and tampering fail with SecretsKeyError; plain (older) values pass as stale.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { SecretBox, SecretsKeyError, parseSecretsKey } from "../../../src/store/secrets.ts";

const hexKey = () => randomBytes(32).toString("hex");

describe("store/secrets", () => {
  it("takes 64 hex characters or base64 of 32 bytes, and refuses anything else naming the setting", () => {
    const raw = randomBytes(32);
    assert.deepEqual(parseSecretsKey(raw.toString("hex")), raw);
    assert.deepEqual(parseSecretsKey(raw.toString("base64")), raw);
    for (const bad of ["", "short", "z".repeat(64), randomBytes(16).toString("base64")]) {
      assert.throws(
        () => parseSecretsKey(bad),
        (err: Error) => err instanceof SecretsKeyError && /SECRETS_KEY/.test(err.message),
      );
    }
    assert.equal(SecretBox.fromSettings(""), null);
  });

  it("seals and opens; the sealed bytes do not contain the plaintext", () => {
    const box = SecretBox.fromSettings(hexKey())!;
    const plain = Buffer.from("the linked device's keys ".repeat(20));
    const sealed = box.seal(plain);
    assert.ok(SecretBox.isSealed(sealed));
    assert.ok(!sealed.includes(Buffer.from("linked device")));
    assert.deepEqual(box.open(sealed), { plain, stale: false });
    assert.notDeepEqual(box.seal(plain), sealed, "a fresh IV every time");
    const s = box.sealString("whsec_abc");
    assert.ok(s.startsWith("sbx1:") && !s.includes("whsec_abc"));
    assert.deepEqual(box.openString(s), { plain: "whsec_abc", stale: false });
  });

  it("rotation: the previous key still opens (stale), the new one seals", () => {
    const oldKey = hexKey();
    const newKey = hexKey();
    const before = SecretBox.fromSettings(oldKey)!.seal(Buffer.from("state"));
    const rotated = SecretBox.fromSettings(newKey, [oldKey])!;
    assert.deepEqual(rotated.open(before), { plain: Buffer.from("state"), stale: true });
    assert.equal(rotated.open(rotated.seal(Buffer.from("state"))).stale, false);
  });

  it("a value of an unconfigured key, or tampered, fails with SecretsKeyError; plain values pass as stale", () => {
    const sealed = SecretBox.fromSettings(hexKey())!.seal(Buffer.from("state"));
    const other = SecretBox.fromSettings(hexKey())!;
    assert.throws(
      () => other.open(sealed),
      (err: Error) => err instanceof SecretsKeyError && /SECRETS_KEY_PREVIOUS/.test(err.message),
    );
    const box = SecretBox.fromSettings(hexKey())!;
    const good = box.seal(Buffer.from("state"));
    good[good.length - 1] ^= 1;
    assert.throws(() => box.open(good), /integrity check/);
    assert.deepEqual(box.open(Buffer.from("plain gzip bytes")), {
      plain: Buffer.from("plain gzip bytes"),
      stale: true,
    });
    assert.deepEqual(box.openString("plain-secret"), { plain: "plain-secret", stale: true });
  });
});
