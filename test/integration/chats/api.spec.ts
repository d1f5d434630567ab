// The chat, contact and group routes of issue #15 on a real cluster (gateway + worker over NATS and
// FerretDB, simulated engine): chats made by messages sent and received, unread counts cleared by
// /read, pages of {items, nextCursor}, typing, number checks, groups and their participants; bad
// input is a 4xx with a stable type, an account that is not connected 409, another workspace's 404.
import { strict as assert } from "node:assert";
import type { AccountView } from "../../../src/accounts/types.ts";
import { simulatedDirectoryOf } from "../../../src/engines/simulated-directory.ts";
import type { GatewayCluster } from "../api/helpers.ts";
import { assertError, connected, messagingCluster, send } from "../messages/support.ts";
import { waitForStatus } from "../api/helpers.ts";

describe("chats: REST routes of chats, contacts and groups", function () {
  this.timeout(60000);
  let gc: GatewayCluster;
  let key: string;
  let otherKey: string;
  let account: AccountView;
  let base: string;

  const get = (path: string, k = key) => gc.gw.call("GET", `${base}${path}`, { key: k });
  const post = (path: string, body: unknown = {}, k = key) =>
    gc.gw.call("POST", `${base}${path}`, { key: k, body });
  const incoming = async (from: string, text: string) => {
    const res = await post("/simulate/message", { from, text });
    assert.equal(res.status, 200, String(res.body));
  };

  before(async () => {
    gc = await messagingCluster();
    key = (await gc.createKey("chatsA")).key;
    otherKey = (await gc.createKey("chatsB")).key;
    account = await connected(gc, "chatsA", "chatter");
    base = `/api/v1/accounts/${account.id}`;
  });
  after(async () => gc?.stop());

  it("chats come from messages sent and received; /read clears the unread count", async () => {
    assert.equal((await send(gc.gw, key, account.id, { to: "15550000002", text: "hi" })).status, 200);
    await incoming("15550000003", "one");
    await incoming("15550000003", "two");
    const chats = await get("/chats");
    assert.equal(chats.status, 200, String(chats.body));
    const byId = new Map(chats.json.items.map((c: any) => [c.id, c]));
    assert.equal(chats.json.items[0].id, "15550000003@c.us", "latest activity first");
    assert.equal((byId.get("15550000003@c.us") as any).unreadCount, 2);
    assert.equal((byId.get("15550000002@c.us") as any).lastMessage.text, "hi");
    assert.equal(chats.json.nextCursor, null);

    const msgs = await get("/chats/15550000003@c.us/messages");
    assert.equal(msgs.status, 200, String(msgs.body));
    assert.deepEqual(
      msgs.json.items.map((m: any) => [m.text, m.fromMe]),
      [
        ["two", false],
        ["one", false],
      ],
    );
    const read = await post("/chats/15550000003@c.us/read");
    assert.equal(read.status, 200, String(read.body));
    assert.deepEqual(read.json, { chatId: "15550000003@c.us", read: true });
    const after = await get("/chats");
    assert.equal(after.json.items.find((c: any) => c.id === "15550000003@c.us").unreadCount, 0);
  });

  it("pages with ?limit&cursor: each message once, newest first; a bad limit or cursor is 422", async () => {
    const chat = "15550000004@c.us";
    for (const text of ["m1", "m2", "m3", "m4", "m5"]) await incoming("15550000004", text);
    const seen: string[] = [];
    let query = "?limit=2";
    for (let page = 1; ; page++) {
      const res = await get(`/chats/${chat}/messages${query}`);
      assert.equal(res.status, 200, String(res.body));
      seen.push(...res.json.items.map((m: any) => m.text));
      if (res.json.nextCursor === null) {
        assert.equal(page, 3);
        break;
      }
      query = `?limit=2&cursor=${res.json.nextCursor}`;
    }
    assert.deepEqual(seen, ["m5", "m4", "m3", "m2", "m1"]);
    const first = await get("/chats?limit=1");
    assert.equal(first.json.items.length, 1);
    const rest = await get(`/chats?limit=1000&cursor=${first.json.nextCursor}`);
    assert.ok(!rest.json.items.some((c: any) => c.id === first.json.items[0].id));
    for (const q of ["?limit=0", "?limit=abc", "?limit=5000", "?cursor=%24%24", "?cursor=bm90LWEtY3Vyc29y"])
      assertError(await get(`/chats${q}`), 422, "VALIDATION_ERROR");
  });

  it("typing shows in a known chat; an unknown chat is 404, a malformed chat id 422", async () => {
    const res = await post("/chats/15550000003@c.us/typing");
    assert.equal(res.status, 200, String(res.body));
    assert.ok(simulatedDirectoryOf(account.id).isTyping("15550000003@c.us"));
    assertError(await post("/chats/15559999999@c.us/typing"), 404, "NOT_FOUND");
    assertError(await post("/chats/15559999999@c.us/read"), 404, "NOT_FOUND");
    assertError(await get("/chats/15559999999@c.us/messages"), 404, "NOT_FOUND");
    assertError(await post("/chats/not-a-chat/read"), 422, "VALIDATION_ERROR");
    assertError(await get("/chats/15550000003@evil.com/messages"), 422, "VALIDATION_ERROR");
  });

  it("contacts are the people chatted with; numbers are checked (…404 is not on WhatsApp)", async () => {
    const contacts = await get("/contacts?limit=1000");
    assert.equal(contacts.status, 200, String(contacts.body));
    const ids = contacts.json.items.map((c: any) => c.id);
    for (const id of ["15550000002@c.us", "15550000003@c.us"]) assert.ok(ids.includes(id), `${id} in ${ids}`);
    const yes = await get("/contacts/+15551112222/exists");
    assert.deepEqual(yes.json, { phoneNumber: "+15551112222", exists: true, chatId: "15551112222@c.us" });
    const no = await get("/contacts/15551110404/exists");
    assert.deepEqual(no.json, { phoneNumber: "15551110404", exists: false, chatId: null });
    assertError(await get("/contacts/abc/exists"), 422, "VALIDATION_ERROR");
  });

  it("groups: created with failures named, participants added and removed, unknown group 404", async () => {
    const created = await post("/groups", { name: "Team", participants: ["15550000002", "15550000404"] });
    assert.equal(created.status, 200, String(created.body));
    const group = created.json.group;
    assert.match(group.id, /@g\.us$/);
    assert.deepEqual(
      group.participants.map((p: any) => p.id),
      ["4915112345678@c.us", "15550000002@c.us"],
    );
    assert.deepEqual(created.json.failed, [{ id: "15550000404@c.us", reason: "not_on_whatsapp" }]);

    const added = await post(`/groups/${group.id}/participants`, { participants: ["15550000005@c.us"] });
    assert.equal(added.status, 200, String(added.body));
    assert.equal(added.json.group.participants.length, 3);
    const removed = await gc.gw.call("DELETE", `${base}/groups/${group.id}/participants`, {
      key,
      body: { participants: ["15550000002"] },
    });
    assert.equal(removed.status, 200, String(removed.body));
    assert.deepEqual(
      removed.json.group.participants.map((p: any) => p.id),
      ["4915112345678@c.us", "15550000005@c.us"],
    );
    const groups = await get("/groups");
    assert.ok(groups.json.items.some((g: any) => g.id === group.id && g.name === "Team"));
    const chats = await get("/chats?limit=1");
    assert.equal(chats.json.items[0].id, group.id, "the group's chat is the latest");

    assertError(
      await post("/groups/120363999999999999@g.us/participants", { participants: ["15550000006"] }),
      404,
      "NOT_FOUND",
    );
    assertError(
      await post(`/groups/${group.id}/participants`, { participants: ["not a phone"] }),
      422,
      "VALIDATION_ERROR",
    );
    assertError(
      await post(`/groups/${group.id}/participants`, { participants: [] }),
      422,
      "VALIDATION_ERROR",
    );
    assertError(await post("/groups", { participants: ["15550000006"] }), 422, "VALIDATION_ERROR");
    assertError(
      await post("/groups/15550000003@c.us/participants", { participants: ["15550000006"] }),
      422,
      "VALIDATION_ERROR",
    );
  });

  it("an account that is not connected is 409; another workspace's account is 404", async () => {
    const scanning = await gc.gw.call("POST", "/api/v1/accounts", { key, body: { name: "scanning" } });
    assert.equal(scanning.status, 201, String(scanning.body));
    await waitForStatus(gc.gw, key, scanning.json.id, "qr_scanning");
    const other = `/api/v1/accounts/${scanning.json.id}`;
    assertError(await gc.gw.call("GET", `${other}/chats`, { key }), 409, "INVALID_STATE");
    assertError(
      await gc.gw.call("GET", `${other}/contacts/15551112222/exists`, { key }),
      409,
      "INVALID_STATE",
    );
    try {
      for (const [method, path, body] of [
        ["GET", "/chats", undefined],
        ["GET", "/chats/15550000003@c.us/messages", undefined],
        ["POST", "/chats/15550000003@c.us/read", {}],
        ["GET", "/contacts", undefined],
        ["GET", "/groups", undefined],
        ["POST", "/groups", { name: "x", participants: ["15550000002"] }],
      ] as const)
        assertError(await gc.gw.call(method, `${base}${path}`, { key: otherKey, body }), 404, "NOT_FOUND");
    } finally {
      assert.equal((await gc.gw.call("DELETE", other, { key })).status, 200);
    }
  });
});
