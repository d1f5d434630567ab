// Secrets at rest on the real MongoDB-wire server: the auth-state blob and the webhook secret read
// raw from the database are not the plaintext; a key rotation re-seals on the owner's next read; a
// plain record of an earlier version is sealed on read; a wrong key fails with a clear error.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { MongoClient, type Binary, type Db } from "mongodb";
import { GridFsAuthStore, INLINE_MAX_BYTES } from "../../../src/store/auth-store.ts";
import { SecretBox, SecretsKeyError } from "../../../src/store/secrets.ts";
import { EndpointsRepo } from "../../../src/store/webhook-endpoints-repo.ts";
import { mongoUrlFor } from "../../support/env.ts";

const key = () => randomBytes(32).toString("base64");
const stamp = { node: "w1", epoch: 1 };

describe("store: secrets sealed at rest", () => {
  let client: MongoClient;
  let db: Db;
  const rawInline = async (id: string) =>
    Buffer.from(
      (await db.collection<{ _id: string; data?: Binary }>("auth_state.inline").findOne({ _id: id }))!.data!
        .buffer,
    );

  before(async () => {
    client = await MongoClient.connect(mongoUrlFor(`sealed${randomBytes(3).toString("hex")}`));
    db = client.db();
  });
  after(async () => client.close());

  it("an auth-state blob is stored sealed (inline and in GridFS) and read back as it was", async () => {
    const store = new GridFsAuthStore(db, SecretBox.fromSettings(key()));
    const small = Buffer.from("standin-linked ".repeat(100));
    await store.save("s_small", small, stamp);
    const raw = await rawInline("s_small");
    assert.ok(SecretBox.isSealed(raw) && !raw.includes(Buffer.from("standin-linked")));
    assert.deepEqual(await store.load("s_small", stamp), small);
    const large = Buffer.concat([Buffer.from("standin-linked"), randomBytes(INLINE_MAX_BYTES + 10)]);
    await store.save("s_large", large, stamp);
    assert.deepEqual(await store.load("s_large", stamp), large);
  });

  it("rotation: the old key still opens, and the owner's read re-seals under the new key", async () => {
    const oldKey = key();
    const newKey = key();
    await new GridFsAuthStore(db, SecretBox.fromSettings(oldKey)).save("s_rot", Buffer.from("state"), stamp);
    const rotated = new GridFsAuthStore(db, SecretBox.fromSettings(newKey, [oldKey]));
    assert.deepEqual(await rotated.load("s_rot", stamp), Buffer.from("state"));
    // Re-sealed: the new key alone opens it now.
    assert.deepEqual(
      await new GridFsAuthStore(db, SecretBox.fromSettings(newKey)).load("s_rot"),
      Buffer.from("state"),
    );
  });

  it("a plain blob of an earlier version is read and sealed; a wrong key fails clearly", async () => {
    const k = key();
    await new GridFsAuthStore(db, null).save("s_plain", Buffer.from("legacy-state"), stamp);
    const store = new GridFsAuthStore(db, SecretBox.fromSettings(k));
    assert.deepEqual(await store.load("s_plain", stamp), Buffer.from("legacy-state"));
    assert.ok(SecretBox.isSealed(await rawInline("s_plain")), "sealed on that read");
    await assert.rejects(
      new GridFsAuthStore(db, SecretBox.fromSettings(key())).load("s_plain"),
      SecretsKeyError,
    );
    await assert.rejects(new GridFsAuthStore(db, null).load("s_plain"), /SECRETS_KEY is not set/);
  });

  it("webhook secrets are stored sealed, given back plain, and a plain one is sealed on read", async () => {
    const box = SecretBox.fromSettings(key());
    const repo = new EndpointsRepo(db, box);
    const doc = await repo.create({
      workspaceId: "ws",
      url: "https://example.org/h",
      secret: "whsec_visible_0123",
    });
    const raw = (await repo.col.findOne({ _id: doc._id }))!;
    assert.ok(raw.secret.startsWith("sbx1:") && !raw.secret.includes("whsec_visible"));
    assert.equal((await repo.findById(doc._id))!.secret, "whsec_visible_0123");
    assert.ok(!("secret" in (await repo.get("ws", doc._id))), "the workspace's reads leave it out");

    const legacy = await new EndpointsRepo(db, null).create({
      workspaceId: "ws",
      url: "https://example.org/l",
      secret: "whsec_old_plain_1",
    });
    await repo.get("ws", legacy._id);
    assert.ok(
      (await repo.col.findOne({ _id: legacy._id }))!.secret.startsWith("sbx1:"),
      "sealed on that read",
    );
    assert.equal((await repo.findById(legacy._id))!.secret, "whsec_old_plain_1");
  });

  it("a webhook secret no configured key opens: flagged by the workspace's reads, refused to delivery, never read by recording", async () => {
    const repo = new EndpointsRepo(db, SecretBox.fromSettings(key()));
    const lost = await new EndpointsRepo(db, SecretBox.fromSettings(key())).create({
      workspaceId: "ws_lost",
      url: "https://example.org/lost",
      secret: "whsec_sealed_elsewhere",
    });
    assert.equal((await repo.get("ws_lost", lost._id)).secretUnreadable, true);
    assert.deepEqual(
      (await repo.list("ws_lost")).map((e) => [e._id, e.secretUnreadable]),
      [[lost._id, true]],
    );
    await assert.rejects(repo.findById(lost._id), SecretsKeyError);
    assert.deepEqual(await repo.enabledFor("ws_lost"), [{ _id: lost._id, events: ["*"] }]);
    assert.equal((await repo.remove("ws_lost", lost._id))._id, lost._id);
    assert.deepEqual(await repo.list("ws_lost"), []);
  });
});
