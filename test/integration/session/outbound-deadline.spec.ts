// The owner's sender and a send's deadline (README, "Sending messages"), on the real MongoDB-wire server:
// a send without a key whose slot comes only after its deadline is not handed to the engine, and its
// slot is left unused; a keyed send is not held to it (a retry with its key answers its result).
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { MongoClient, type Db } from "mongodb";
import { checkSendRequest, requestDigest } from "../../../src/messages/validate.ts";
import type { OutboundMessage, OwnerSend } from "../../../src/messages/types.ts";
import { OutboundSender } from "../../../src/session/outbound.ts";
import type { PaceSlot } from "../../../src/session/send-pacing.ts";
import { IdempotencyRepo } from "../../../src/store/idempotency-repo.ts";
import { MessageStatusRepo } from "../../../src/store/message-status-repo.ts";
import { OutboundMediaStore } from "../../../src/store/outbound-media.ts";
import { mongoUrlFor } from "../../support/env.ts";
import { waitFor } from "../../support/wait.ts";

describe("session/outbound: a send's deadline", function () {
  this.timeout(30000);
  let client: MongoClient;
  let db: Db;
  let engineCalls: OutboundMessage[];
  let slotsLeft: boolean[];

  beforeEach(async () => {
    client = await MongoClient.connect(mongoUrlFor(`outd${randomBytes(3).toString("hex")}`));
    db = client.db();
    engineCalls = [];
    slotsLeft = [];
  });
  afterEach(async () => {
    await db.dropDatabase().finally(() => client.close());
  });

  /** A sender whose every slot comes only once `deadline` has passed (a long queue ahead). */
  function sender(deadline: number): OutboundSender {
    return new OutboundSender({
      idempotency: new IdempotencyRepo(db, 3600_000),
      statuses: new MessageStatusRepo(db, 3600_000),
      media: new OutboundMediaStore(db),
      fetchMedia: async () => {
        throw new Error("no media in this spec");
      },
      fence: () => ({ node: "n1", epoch: 1 }),
      pace: async (): Promise<PaceSlot> => {
        await waitFor(() => Date.now() > deadline, { what: "the deadline to pass" });
        let left = false;
        return {
          leave: (handedOver) => {
            if (!left) slotsLeft.push(handedOver);
            left = true;
          },
        };
      },
      engineSend: async (_accountId, message) => {
        engineCalls.push(message);
        return { id: `true_${engineCalls.length}` };
      },
      logger: { warn: () => undefined },
    });
  }

  function request(key?: string): OwnerSend {
    const { draft } = checkSendRequest({ to: "4915100000002", text: "late" }, { mediaMaxBytes: 1 });
    const p: OwnerSend = { workspaceId: "ws", accountId: "acc_1", draft, digest: requestDigest(draft, null) };
    if (key) p.key = key;
    return p;
  }

  it("without a key, a slot after the deadline: SEND_DEADLINE_EXCEEDED, never handed over", async () => {
    const deadline = Date.now() + 50;
    await assert.rejects(sender(deadline).send(request(), { deadline }), {
      type: "SEND_DEADLINE_EXCEEDED",
      code: 504,
    });
    assert.equal(engineCalls.length, 0, "handed to the engine after its deadline");
    assert.deepEqual(slotsLeft, [false], "the slot is left unused: the next send goes at once");
    assert.equal(await db.collection("message_status").countDocuments(), 0);
  });

  it("with a key the deadline does not hold: sent, and its record answers a retry", async () => {
    const deadline = Date.now() + 50;
    const s = sender(deadline);
    const first = await s.send(request("k1"), { deadline });
    assert.equal(first.status, "sent");
    assert.equal(engineCalls.length, 1);
    const again = await s.send(request("k1"), { deadline });
    assert.deepEqual(again, { ...first, duplicate: true });
    assert.equal(engineCalls.length, 1);
  });
});
