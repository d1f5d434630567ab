// A message's status record moves forward only; a receipt says whether it moved it, found it there
// already, or came behind a later one (receipts can arrive out of order).
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { MongoClient } from "mongodb";
import { MessageStatusRepo } from "../../../src/store/message-status-repo.ts";
import { mongoUrlFor } from "../../support/env.ts";

describe("store: receipts of a message", () => {
  let client: MongoClient;
  let repo: MessageStatusRepo;

  before(async () => {
    client = await MongoClient.connect(mongoUrlFor(`msts${randomBytes(3).toString("hex")}`));
    repo = new MessageStatusRepo(client.db(), 3600_000);
  });
  after(async () => client?.close());

  it("advanced, same or behind, and GET's status never moves back", async () => {
    const ids = { workspaceId: "ws", accountId: "acc_1", messageId: "true_1@c.us_A" };
    const receipt = (status: "sent" | "delivered" | "read") =>
      repo.recordReceipt({ ...ids, status, at: new Date() });
    assert.equal(await receipt("sent"), "advanced");
    assert.equal(await receipt("read"), "advanced");
    assert.equal(await receipt("delivered"), "behind");
    assert.equal(await receipt("read"), "same");
    assert.equal((await repo.get("ws", "acc_1", ids.messageId))?.status, "read");
  });
});
