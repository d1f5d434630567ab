import { strict as assert } from "node:assert";
import { canonicalJson, eventIdOf, filterMatches, subjectOf } from "../../../src/webhooks/events.ts";

describe("webhooks/events", () => {
  const status = {
    accountId: "acc_1",
    workspaceId: "ws1",
    sessionId: "s",
    status: "connected",
    previousStatus: "authenticated",
    node: "w1",
    epoch: 3,
    at: "2026-01-01T00:00:00.000Z",
  };

  it("derives the same event id from the same event on every node, whatever the key order", () => {
    const reordered = Object.fromEntries(Object.entries(status).reverse());
    assert.equal(eventIdOf("account.status", status), eventIdOf("account.status", reordered));
    assert.match(eventIdOf("account.status", status), /^evt_[0-9a-f]{32}$/);
  });

  it("gives distinct events distinct ids", () => {
    const id = eventIdOf("account.status", status);
    assert.notEqual(id, eventIdOf("account.status", { ...status, at: "2026-01-01T00:00:00.001Z" }));
    assert.notEqual(id, eventIdOf("account.status", { ...status, epoch: 4 }));
    assert.notEqual(id, eventIdOf("account.qr", status));
  });

  it("canonical JSON sorts keys and drops undefined and null fields (not array items)", () => {
    assert.equal(
      canonicalJson({ b: 1, a: [{ d: 2, c: undefined }, null], e: null }),
      '{"a":[{"d":2},null],"b":1}',
    );
  });

  it("an event read back from the log hashes like its broadcast", () => {
    const at = new Date("2026-12-05T10:00:00.000Z");
    const logged = { accountId: "a", workspaceId: "w", at, reason: null, previousStatus: null };
    const broadcast = JSON.parse(JSON.stringify({ ...logged, reason: undefined }));
    assert.equal(eventIdOf("account.status", logged), eventIdOf("account.status", broadcast));
  });

  it("filters by event name or *", () => {
    assert.ok(filterMatches(["*"], "account.qr"));
    assert.ok(filterMatches(["account.qr", "account.status"], "account.qr"));
    assert.ok(!filterMatches(["account.status"], "account.qr"));
  });

  it("finds the account of every event shape", () => {
    assert.deepEqual(subjectOf(status), { workspaceId: "ws1", accountId: "acc_1" });
    assert.deepEqual(subjectOf({ account: { id: "acc_2", workspaceId: "ws2", status: "initializing" } }), {
      workspaceId: "ws2",
      accountId: "acc_2",
    });
    assert.equal(subjectOf({ foo: 1 }), null);
  });
});
