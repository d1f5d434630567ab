// Idempotency-Key / clientId on a real cluster (two gateways, one worker, simulated engine): a send
// happens at most once per key and account, whichever gateway a retry reaches, however many arrive at
// once; and each failure window leaves a record the next request handles as the README says (records
// seeded as a lost owner leaves them).
import { strict as assert } from "node:assert";
import type { AccountView } from "../../../src/accounts/types.ts";
import { checkSendRequest, requestDigest } from "../../../src/messages/validate.ts";
import type { IdempotencyDoc } from "../../../src/store/idempotency-repo.ts";
import type { GatewayCluster } from "../api/helpers.ts";
import { waitFor } from "../../support/wait.ts";
import { assertError, connected, messagingCluster, send, sent, withDb } from "./support.ts";

describe("messages: idempotency", function () {
  this.timeout(60000);
  let gc: GatewayCluster;
  let key: string;
  let account: AccountView;
  let n = 0;
  const body = (text: string) => ({ to: "4915100000002", text });
  const fresh = () => `key-${Date.now()}-${n++}`;

  before(async () => {
    gc = await messagingCluster(2);
    key = (await gc.createKey("idem")).key;
    account = await connected(gc, "idem", "sender");
  });
  after(async () => gc?.stop());

  function sentTexts(text: string): number {
    return sent(account.id).filter((m) => m.text === text).length;
  }

  it("a repeat through either gateway answers the first result, and sends nothing", async () => {
    const k = fresh();
    const first = await send(gc.gateways[0], key, account.id, body("once"), { "Idempotency-Key": k });
    assert.equal(first.status, 200, String(first.body));
    assert.equal(first.json.status, "sent");
    assert.equal(first.json.duplicate, undefined);
    for (const gw of gc.gateways) {
      const again = await send(gw, key, account.id, body("once"), { "Idempotency-Key": k });
      assert.equal(again.status, 200);
      assert.deepEqual(again.json, { ...first.json, duplicate: true });
    }
    assert.equal(sentTexts("once"), 1);
  });

  it("clientId in the body is the same key; the header and the body name one record", async () => {
    const k = fresh();
    const first = await send(gc.gw, key, account.id, { ...body("by clientId"), clientId: k });
    const again = await send(gc.gateways[1], key, account.id, body("by clientId"), { "Idempotency-Key": k });
    assert.equal(again.json.id, first.json.id);
    assert.equal(sentTexts("by clientId"), 1);
  });

  it("concurrent repeats (both gateways at once) send once and all answer the same id", async () => {
    const k = fresh();
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        send(gc.gateways[i % 2], key, account.id, body("burst"), { "Idempotency-Key": k }),
      ),
    );
    for (const a of answers) assert.equal(a.status, 200, String(a.body));
    assert.equal(new Set(answers.map((a) => a.json.id)).size, 1);
    assert.equal(answers.filter((a) => !a.json.duplicate).length, 1);
    assert.equal(sentTexts("burst"), 1);
  });

  it("a key reused for another message → 422 IDEMPOTENCY_KEY_REUSED, nothing sent", async () => {
    const k = fresh();
    await send(gc.gw, key, account.id, body("original"), { "Idempotency-Key": k });
    assertError(
      await send(gc.gw, key, account.id, body("changed"), { "Idempotency-Key": k }),
      422,
      "IDEMPOTENCY_KEY_REUSED",
    );
    assert.equal(sentTexts("changed"), 0);
  });

  it("a key reused for the same file under another name → 422 IDEMPOTENCY_KEY_REUSED", async () => {
    const k = fresh();
    const doc = (filename: string) => ({
      to: "4915100000002",
      type: "document",
      media: {
        base64: Buffer.from("%PDF-1.4 one file").toString("base64"),
        mimetype: "application/pdf",
        filename,
      },
    });
    const first = await send(gc.gw, key, account.id, doc("a.pdf"), { "Idempotency-Key": k });
    assert.equal(first.status, 200, String(first.body));
    const same = await send(gc.gw, key, account.id, doc("a.pdf"), { "Idempotency-Key": k });
    assert.equal(same.json.duplicate, true);
    assertError(
      await send(gc.gw, key, account.id, doc("b.pdf"), { "Idempotency-Key": k }),
      422,
      "IDEMPOTENCY_KEY_REUSED",
    );
  });

  it("one key used at once for different messages: one is sent, every other → 422 IDEMPOTENCY_KEY_REUSED", async () => {
    const k = fresh();
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        send(gc.gateways[i % 2], key, account.id, body(`contender ${i}`), { "Idempotency-Key": k }),
      ),
    );
    const won = answers.filter((a) => a.status === 200);
    assert.equal(won.length, 1, answers.map((a) => `${a.status} ${a.body}`).join("\n"));
    assert.equal(won[0].json.duplicate, undefined);
    for (const a of answers.filter((x) => x !== won[0])) assertError(a, 422, "IDEMPOTENCY_KEY_REUSED");
    const total = Array.from({ length: 8 }, (_, i) => sentTexts(`contender ${i}`)).reduce((x, y) => x + y);
    assert.equal(total, 1);
  });

  it("a key is per account: the same key on another account sends there", async () => {
    const k = fresh();
    const other = await connected(gc, "idem", "other");
    const a = await send(gc.gw, key, account.id, body("per account"), { "Idempotency-Key": k });
    const b = await send(gc.gw, key, other.id, body("per account"), { "Idempotency-Key": k });
    assert.notEqual(a.json.id, b.json.id);
    assert.equal(b.json.duplicate, undefined);
    assert.equal(sent(other.id).filter((m) => m.text === "per account").length, 1);
  });

  it("a send the engine refused (not connected) keeps no record: the same key sends once connected", async () => {
    const k = fresh();
    const created = await gc.gw.call("POST", "/api/v1/accounts", { key, body: { name: "late" } });
    const late = created.json.id as string;
    await waitFor(
      async () =>
        (await gc.gw.call("GET", `/api/v1/accounts/${late}`, { key })).json.status === "qr_scanning",
      {
        what: "qr_scanning",
      },
    );
    assertError(await send(gc.gw, key, late, body("later"), { "Idempotency-Key": k }), 409, "INVALID_STATE");
    assert.equal(
      await withDb(gc, (db) => db.collection("idempotency").countDocuments({ accountId: late })),
      0,
    );
    await gc.gw.call("POST", `/api/v1/accounts/${late}/simulate/scan`, {
      key,
      body: { phoneNumber: "4915100000077" },
    });
    await waitFor(
      async () => (await gc.gw.call("GET", `/api/v1/accounts/${late}`, { key })).json.status === "connected",
      {
        what: "connected",
      },
    );
    const ok = await send(gc.gw, key, late, body("later"), { "Idempotency-Key": k });
    assert.equal(ok.json.status, "sent");
    assert.equal(sent(late).filter((m) => m.text === "later").length, 1);
  });

  describe("failure windows (records as a lost owner leaves them)", () => {
    /** Seeds the record a lost owner `lost-node` would have left for `text` under key `k`. */
    async function seed(k: string, text: string, patch: Partial<IdempotencyDoc>): Promise<void> {
      const { draft } = checkSendRequest(body(text), { mediaMaxBytes: 1 });
      const now = new Date();
      const doc: IdempotencyDoc = {
        _id: `${account.id}|${k}`,
        workspaceId: "idem",
        accountId: account.id,
        key: k,
        digest: requestDigest(draft, null),
        state: "recorded",
        attempt: "lost-attempt",
        node: "lost-node",
        epoch: 1,
        messageId: null,
        createdAt: now,
        at: now,
        expiresAt: new Date(now.getTime() + 3600_000),
        ...patch,
      };
      await withDb(gc, (db) => db.collection<IdempotencyDoc>("idempotency").insertOne(doc));
    }

    it("after the record, before the engine (`recorded`): the next owner sends it, once", async () => {
      const k = fresh();
      await seed(k, "window b", {});
      const res = await send(gc.gw, key, account.id, body("window b"), { "Idempotency-Key": k });
      assert.equal(res.status, 200, String(res.body));
      assert.equal(res.json.status, "sent");
      const again = await send(gc.gateways[1], key, account.id, body("window b"), { "Idempotency-Key": k });
      assert.equal(again.json.id, res.json.id);
      assert.equal(sentTexts("window b"), 1);
    });

    it("after the engine, before the result (`sending`): `uncertain`, never sent again; a late result wins", async () => {
      const k = fresh();
      await seed(k, "window c", { state: "sending" });
      const res = await send(gc.gw, key, account.id, body("window c"), { "Idempotency-Key": k });
      assert.equal(res.status, 200, String(res.body));
      assert.equal(res.json.status, "uncertain");
      assert.equal(res.json.id, null);
      assert.equal(res.json.error.type, "OWNER_LOST_MID_SEND");
      const again = await send(gc.gateways[1], key, account.id, body("window c"), { "Idempotency-Key": k });
      assert.equal(again.json.status, "uncertain");
      assert.equal(sentTexts("window c"), 0);
      // The lost owner's result write lands late (it is conditional on its attempt only): facts win.
      await withDb(gc, (db) =>
        db
          .collection<IdempotencyDoc>("idempotency")
          .updateOne(
            { _id: `${account.id}|${k}`, attempt: "lost-attempt", state: { $in: ["sending", "uncertain"] } },
            { $set: { state: "sent", messageId: "true_lost_1", error: undefined } },
          ),
      );
      const settled = await send(gc.gw, key, account.id, body("window c"), { "Idempotency-Key": k });
      assert.equal(settled.json.status, "sent");
      assert.equal(settled.json.id, "true_lost_1");
      assert.equal(sentTexts("window c"), 0);
    });

    it("after the result, before the answer (`sent`): the repeat answers the stored result", async () => {
      const k = fresh();
      await seed(k, "window d", { state: "sent", messageId: "true_stored_1" });
      const res = await send(gc.gw, key, account.id, body("window d"), { "Idempotency-Key": k });
      assert.deepEqual([res.json.status, res.json.id, res.json.duplicate], ["sent", "true_stored_1", true]);
      assert.equal(sentTexts("window d"), 0);
    });

    it("a record older than IDEMPOTENCY_TTL_MS counts as absent: the key sends again", async () => {
      const k = fresh();
      await seed(k, "expired", {
        state: "sent",
        messageId: "true_old_1",
        expiresAt: new Date(Date.now() - 1000),
      });
      const res = await send(gc.gw, key, account.id, body("expired"), { "Idempotency-Key": k });
      assert.equal(res.json.status, "sent");
      assert.notEqual(res.json.id, "true_old_1");
      assert.equal(sentTexts("expired"), 1);
    });
  });
});
