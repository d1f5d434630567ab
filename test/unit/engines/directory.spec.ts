// Cursor pagination shared by every engine's directory calls (src/engines/directory.ts) and the
// simulated engine's in-memory chats, contacts and groups (src/engines/simulated-directory.ts).
import { strict as assert } from "node:assert";
import { chatIdOf, cursorOf, pageOf, positionOf, type PageRequest } from "../../../src/engines/directory.ts";
import { SimulatedDirectory, simulatedNumberExists } from "../../../src/engines/simulated-directory.ts";
import { failuresOf, participantReason, placedMessages } from "../../../src/engines/webjs/directory.ts";

const at = (e: { t: number; id: string }) => e;

/** Every entry of `items`, page by page. */
function all<T extends { t: number; id: string }>(items: T[], limit: number): T[][] {
  const pages: T[][] = [];
  let req: PageRequest = { limit };
  for (;;) {
    const page = pageOf(items, req, at);
    pages.push(page.items);
    if (!page.nextCursor) return pages;
    req = { limit, cursor: page.nextCursor };
  }
}

describe("directory pagination", () => {
  const items = [
    { t: 1, id: "a" },
    { t: 3, id: "b" },
    { t: 3, id: "a" },
    { t: 2, id: "c" },
    { t: 0, id: "z" },
  ];

  it("orders latest first, then by id, and pages each entry once", () => {
    const pages = all(items, 2);
    assert.deepEqual(
      pages.map((p) => p.map((e) => `${e.t}${e.id}`)),
      [["3a", "3b"], ["2c", "1a"], ["0z"]],
    );
  });

  it("a last page that is exactly full says there is no next page", () => {
    assert.equal(pageOf(items, { limit: 5 }, at).nextCursor, null);
    assert.deepEqual(
      all(items, 5).map((p) => p.length),
      [5],
    );
  });

  it("a cursor stays valid when its entry goes away", () => {
    const first = pageOf(items, { limit: 2 }, at);
    const without = items.filter((e) => !(e.t === 3 && e.id === "b"));
    const next = pageOf(without, { limit: 10, cursor: first.nextCursor! }, at);
    assert.deepEqual(
      next.items.map((e) => e.id),
      ["c", "a", "z"],
    );
  });

  it("cursors round-trip; foreign cursors and bad limits are VALIDATION_ERROR", () => {
    assert.deepEqual(positionOf(cursorOf({ t: 17, id: "x@c.us" })), { t: 17, id: "x@c.us" });
    for (const bad of ["", "$$", Buffer.from("not json").toString("base64url"), cursorOf({ t: 1, id: "" })])
      assert.throws(() => positionOf(bad), { type: "VALIDATION_ERROR" });
    for (const limit of [0, 1001, 1.5])
      assert.throws(() => pageOf(items, { limit }, at), { type: "VALIDATION_ERROR" });
  });

  it("chatIdOf takes phone numbers and chat ids", () => {
    assert.equal(chatIdOf("+1 555 123 4567"), "15551234567@c.us");
    assert.equal(chatIdOf("120363000000000001@g.us"), "120363000000000001@g.us");
  });
});

describe("simulated directory", () => {
  const me = "15550000001";

  it("chats come from messages sent and received; unread counts until markRead", () => {
    const dir = new SimulatedDirectory();
    dir.recordSent({ id: "out1", to: "15550000002", type: "text", text: "hi" }, me);
    dir.recordReceived({ id: "in1", from: "15550000003", text: "yo", timestamp: 100 });
    dir.recordReceived({ id: "in2", from: "15550000003", text: "there?", timestamp: 101 });
    const chats = dir.listChats({}).items;
    assert.deepEqual(
      chats.map((c) => [c.id, c.unreadCount, c.lastMessage?.id]),
      [
        ["15550000003@c.us", 2, "in2"],
        ["15550000002@c.us", 0, "out1"],
      ],
    );
    dir.markRead("15550000003@c.us");
    assert.equal(dir.listChats({}).items[0].unreadCount, 0);
    const msgs = dir.chatMessages("15550000003@c.us", { limit: 1 });
    assert.deepEqual(
      msgs.items.map((m) => m.id),
      ["in2"],
    );
    const older = dir.chatMessages("15550000003@c.us", { limit: 1, cursor: msgs.nextCursor! });
    assert.deepEqual(
      older.items.map((m) => [m.id, m.fromMe]),
      [["in1", false]],
    );
    assert.equal(older.nextCursor, null);
    assert.deepEqual(
      dir.listContacts({}).items.map((c) => c.phoneNumber),
      ["15550000002", "15550000003"],
    );
  });

  it("unknown chats and groups are NOT_FOUND; typing shows in a known chat", () => {
    const dir = new SimulatedDirectory();
    assert.throws(() => dir.markRead("15550000009@c.us"), { type: "NOT_FOUND", code: 404 });
    assert.throws(() => dir.chatMessages("15550000009@c.us", {}), { type: "NOT_FOUND" });
    assert.throws(() => dir.addParticipants("1@g.us", ["15550000002"]), { type: "NOT_FOUND" });
    dir.recordReceived({ id: "in", from: "15550000009", text: "x", timestamp: 1 });
    dir.sendTyping("15550000009@c.us");
    assert.ok(dir.isTyping("15550000009@c.us"));
  });

  it("numbers ending in 404 are not on WhatsApp", () => {
    assert.equal(simulatedNumberExists("15550000404"), false);
    assert.equal(simulatedNumberExists("+15550000405"), true);
    assert.equal(simulatedNumberExists("12"), false);
    assert.deepEqual(new SimulatedDirectory().numberExists("15551112222"), {
      phoneNumber: "15551112222",
      exists: true,
      chatId: "15551112222@c.us",
    });
  });

  it("groups: created with me as admin, participants added and removed, failures named", () => {
    const dir = new SimulatedDirectory();
    const created = dir.createGroup({ name: "Team", participants: ["15550000002", "15550000404"] }, me);
    assert.match(created.group.id, /^120363[0-9]{12}@g\.us$/);
    assert.deepEqual(created.group.participants, [
      { id: "15550000001@c.us", isAdmin: true },
      { id: "15550000002@c.us", isAdmin: false },
    ]);
    assert.deepEqual(created.failed, [{ id: "15550000404@c.us", reason: "not_on_whatsapp" }]);
    const added = dir.addParticipants(created.group.id, ["15550000003", "15550000002"]);
    assert.equal(added.group.participants.length, 3);
    assert.deepEqual(added.failed, [{ id: "15550000002@c.us", reason: "already_participant" }]);
    const removed = dir.removeParticipants(created.group.id, ["15550000002", "15550000008"]);
    assert.deepEqual(
      removed.group.participants.map((p) => p.id),
      ["15550000001@c.us", "15550000003@c.us"],
    );
    assert.deepEqual(removed.failed, [{ id: "15550000008@c.us", reason: "not_participant" }]);
    assert.deepEqual(
      dir.listGroups({}).items.map((g) => g.name),
      ["Team"],
    );
    assert.equal(dir.listChats({}).items[0].isGroup, true);
  });
});

describe("webjs directory mapping", () => {
  it("messages of one second keep WhatsApp's order when paged (rank within the second)", () => {
    const msg = (id: string, timestamp: number) => ({
      id,
      chatId: "1@c.us",
      fromMe: false,
      from: "1@c.us",
      type: "chat",
      text: id,
      timestamp,
    });
    // Oldest first, as WhatsApp holds them; ids sort against the order on purpose.
    const placed = placedMessages([msg("z", 10), msg("y", 11), msg("x", 11), msg("w", 11), msg("v", 12)]);
    const first = pageOf(placed, { limit: 3 }, (e) => e.at);
    assert.deepEqual(
      first.items.map((e) => e.message.id),
      ["v", "w", "x"],
    );
    const rest = pageOf(placed, { limit: 3, cursor: first.nextCursor! }, (e) => e.at);
    assert.deepEqual(
      rest.items.map((e) => e.message.id),
      ["y", "z"],
    );
  });

  it("participant status codes become the contract's reasons", () => {
    assert.equal(participantReason(404), "not_on_whatsapp");
    assert.equal(participantReason(409), "already_participant");
    assert.equal(participantReason(500), "whatsapp_500");
    assert.deepEqual(
      failuresOf({ "1@c.us": { code: 200 }, "2@c.us": { statusCode: 404 }, "3@c.us": { code: 403 } }),
      [
        { id: "2@c.us", reason: "not_on_whatsapp" },
        { id: "3@c.us", reason: "invite_only" },
      ],
    );
  });
});
