// Secrets at rest (auth-state blobs, webhook secrets) sealed with AES-256-GCM under SECRETS_KEY. A
// sealed value names the key that sealed it, so older keys (SECRETS_KEY_PREVIOUS) still open what they
// sealed while new writes use the current key; a value no configured key sealed fails with
// SecretsKeyError instead of decrypting to garbage, and tampering fails the GCM tag.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { Errors } from "moleculer";

const MAGIC = Buffer.from("SBX1");
const KEY_ID_BYTES = 8;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER = MAGIC.length + KEY_ID_BYTES + IV_BYTES + TAG_BYTES;
/** Prefix of a sealed string (webhook secrets are stored as strings). */
const STRING_PREFIX = "sbx1:";

export class SecretsKeyError extends Errors.MoleculerError {
  constructor(message: string, data?: object) {
    super(message, 500, "SECRETS_KEY", data);
  }
}

/** A 32-byte key from its setting: 64 hex characters or base64 of 32 bytes. */
export function parseSecretsKey(text: string, setting = "SECRETS_KEY"): Buffer {
  const t = text.trim();
  let key: Buffer | null = null;
  if (/^[0-9a-fA-F]{64}$/.test(t)) key = Buffer.from(t, "hex");
  else if (/^[A-Za-z0-9+/]{43}=?$/.test(t)) key = Buffer.from(t, "base64");
  if (!key || key.length !== 32) {
    throw new SecretsKeyError(
      `${setting} must be 32 bytes, as 64 hex characters or base64 (openssl rand -base64 32)`,
      { setting },
    );
  }
  return key;
}

function keyIdOf(key: Buffer): Buffer {
  return createHash("sha256").update(key).digest().subarray(0, KEY_ID_BYTES);
}

export class SecretBox {
  private readonly currentId: Buffer;
  private readonly keys = new Map<string, Buffer>();

  /** @param current seals new values; `previous` only open old ones */
  constructor(
    private readonly current: Buffer,
    previous: Buffer[] = [],
  ) {
    this.currentId = keyIdOf(current);
    for (const key of [current, ...previous]) this.keys.set(keyIdOf(key).toString("hex"), key);
  }

  /** From a node's Config. */
  static fromConfig(cfg: { secretsKey: string; secretsKeyPrevious: string[] }): SecretBox | null {
    return SecretBox.fromSettings(cfg.secretsKey, cfg.secretsKeyPrevious);
  }

  /** From the settings' text; null when no key is set (values are then stored as they are). */
  static fromSettings(current: string, previous: string[] = []): SecretBox | null {
    if (!current) return null;
    return new SecretBox(
      parseSecretsKey(current),
      previous.filter(Boolean).map((k) => parseSecretsKey(k, "SECRETS_KEY_PREVIOUS")),
    );
  }

  static isSealed(value: Buffer): boolean {
    return value.length >= HEADER && value.subarray(0, MAGIC.length).equals(MAGIC);
  }

  seal(plain: Buffer): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.current, iv);
    cipher.setAAD(this.currentId);
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return Buffer.concat([MAGIC, this.currentId, iv, cipher.getAuthTag(), body]);
  }

  /** Opens a sealed value; a plain (legacy) one comes back as it is. `stale`: not sealed under the
   * current key (legacy or an older key), so the caller writes it again sealed (migration, rotation). */
  open(value: Buffer): { plain: Buffer; stale: boolean } {
    if (!SecretBox.isSealed(value)) return { plain: value, stale: true };
    const keyId = value.subarray(MAGIC.length, MAGIC.length + KEY_ID_BYTES);
    const key = this.keys.get(keyId.toString("hex"));
    if (!key) {
      throw new SecretsKeyError(
        `A stored secret was sealed under key ${keyId.toString("hex")}, which is neither SECRETS_KEY nor in SECRETS_KEY_PREVIOUS`,
        { keyId: keyId.toString("hex") },
      );
    }
    const ivAt = MAGIC.length + KEY_ID_BYTES;
    const decipher = createDecipheriv("aes-256-gcm", key, value.subarray(ivAt, ivAt + IV_BYTES));
    decipher.setAAD(keyId);
    decipher.setAuthTag(value.subarray(ivAt + IV_BYTES, HEADER));
    try {
      const plain = Buffer.concat([decipher.update(value.subarray(HEADER)), decipher.final()]);
      return { plain, stale: !keyId.equals(this.currentId) };
    } catch {
      throw new SecretsKeyError(
        `A stored secret under key ${keyId.toString("hex")} failed its integrity check`,
        {
          keyId: keyId.toString("hex"),
        },
      );
    }
  }

  sealString(plain: string): string {
    return STRING_PREFIX + this.seal(Buffer.from(plain, "utf8")).toString("base64");
  }

  openString(value: string): { plain: string; stale: boolean } {
    if (!value.startsWith(STRING_PREFIX)) return { plain: value, stale: true };
    const { plain, stale } = this.open(Buffer.from(value.slice(STRING_PREFIX.length), "base64"));
    return { plain: plain.toString("utf8"), stale };
  }
}
