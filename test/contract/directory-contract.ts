// The directory calls of the engine contract (src/engines/directory.ts: chats, messages, read, typing,
// contacts, number check, groups), run by engineContractSuite (engine-contract.ts) on every engine
// that can be linked here. A call an engine cannot run here is skipped with its printed reason.
import { strict as assert } from "node:assert";
import type { Engine, EngineEvents } from "../../src/engines/base.ts";
import { DIRECTORY_CALLS, type ChatSummary, type EngineDirectory } from "../../src/engines/directory.ts";
import { waitFor } from "../support/wait.ts";

export type DirectoryCall = keyof EngineDirectory;

export interface DirectoryContractOptions {
  /** Calls that cannot run on this engine here, each with why (printed when its tests skip). */
  skip?: Partial<Record<DirectoryCall, string>>;
}

interface Linked {
  engine: Engine;
  seen: { event: keyof EngineEvents; args: unknown[] }[];
}

/** Numbers of the contract: the rule of both the simulated engine and the stand-in is that numbers
 * ending in 404 are not on WhatsApp. */
const ON_WHATSAPP = "15551112222";
const NOT_ON_WHATSAPP = "15551110404";

export function directoryContract(
  name: string,
  linked: (phone?: string) => Promise<Linked>,
  notConnected: () => Promise<Engine>,
  options: DirectoryContractOptions = {},
): void {
  /** `it` that skips, saying why, when one of `calls` cannot run on this engine here. */
  function test(title: string, calls: DirectoryCall[], body: () => Promise<void>): void {
    it(`directory: ${title}`, async function () {
      const byReason = new Map<string, DirectoryCall[]>();
      for (const c of calls) {
        const reason = options.skip?.[c];
        if (reason) byReason.set(reason, [...(byReason.get(reason) ?? []), c]);
      }
      if (byReason.size) {
        const why = [...byReason].map(([reason, cs]) => `${cs.join(", ")}: ${reason}`);
        console.log(`      skipped (${name}): ${why.join("; ")}`);
        this.skip();
      }
      await body();
    });
  }

  /** An incoming message from `from`, once the engine has relayed it. */
  async function receive(l: Linked, from: string, text: string): Promise<void> {
    await l.engine.simulate!.message(from, text);
    await waitFor(
      () => l.seen.find((s) => s.event === "message" && (s.args[0] as { text: string }).text === text),
      { what: `${name}: message '${text}' relayed` },
    );
  }

  test("every call refuses a session that is not connected (INVALID_STATE)", [], async () => {
    const engine = await notConnected();
    const calls: Record<DirectoryCall, () => Promise<unknown>> = {
      listChats: () => engine.listChats({}),
      chatMessages: () => engine.chatMessages("15550001111@c.us", {}),
      markRead: () => engine.markRead("15550001111@c.us"),
      sendTyping: () => engine.sendTyping("15550001111@c.us"),
      listContacts: () => engine.listContacts({}),
      numberExists: () => engine.numberExists(ON_WHATSAPP),
      listGroups: () => engine.listGroups({}),
      createGroup: () => engine.createGroup({ name: "g", participants: [ON_WHATSAPP] }),
      addParticipants: () => engine.addParticipants("120363000000000001@g.us", [ON_WHATSAPP]),
      removeParticipants: () => engine.removeParticipants("120363000000000001@g.us", [ON_WHATSAPP]),
    };
    assert.deepEqual(Object.keys(calls).sort(), [...DIRECTORY_CALLS].sort(), "every call is tried");
    for (const [call, run] of Object.entries(calls))
      await assert.rejects(run(), { type: "INVALID_STATE" }, `${call} before connected`);
  });

  test(
    "numberExists: a number on WhatsApp has a chat id; one ending in 404 does not",
    ["numberExists"],
    async () => {
      const { engine } = await linked();
      assert.deepEqual(await engine.numberExists(ON_WHATSAPP), {
        phoneNumber: ON_WHATSAPP,
        exists: true,
        chatId: `${ON_WHATSAPP}@c.us`,
      });
      assert.deepEqual(await engine.numberExists(NOT_ON_WHATSAPP), {
        phoneNumber: NOT_ON_WHATSAPP,
        exists: false,
        chatId: null,
      });
    },
  );

  test(
    "received messages make an unread chat; its messages list newest first; markRead clears it; a send joins it",
    ["listChats", "chatMessages", "markRead"],
    async () => {
      const l = await linked();
      await receive(l, "15550003333", "first");
      await receive(l, "15550003333", "second");
      const chat = (await l.engine.listChats({})).items.find((c) => c.id === "15550003333@c.us");
      assert.ok(chat, "the chat is listed");
      assert.equal(chat.isGroup, false);
      assert.equal(chat.unreadCount, 2);
      assert.equal(chat.lastMessage?.text, "second");
      const msgs = await l.engine.chatMessages("15550003333@c.us", { limit: 1 });
      assert.deepEqual(
        msgs.items.map((m) => [m.text, m.fromMe, m.chatId]),
        [["second", false, "15550003333@c.us"]],
      );
      assert.ok(msgs.nextCursor, "a second page");
      const older = await l.engine.chatMessages("15550003333@c.us", { limit: 5, cursor: msgs.nextCursor });
      assert.deepEqual(
        older.items.map((m) => m.text),
        ["first"],
      );
      assert.equal(older.nextCursor, null);
      await l.engine.markRead("15550003333@c.us");
      const read = (await l.engine.listChats({})).items.find((c) => c.id === "15550003333@c.us");
      assert.equal(read?.unreadCount, 0);
      // A message sent joins the chat, newest, from me; it leaves the chat read.
      const sent = await l.engine.sendText("15550003333", "reply");
      const latest = (await l.engine.chatMessages("15550003333@c.us", { limit: 1 })).items[0];
      assert.deepEqual([latest.id, latest.text, latest.fromMe], [sent.id, "reply", true]);
      const after = (await l.engine.listChats({})).items.find((c) => c.id === "15550003333@c.us");
      assert.deepEqual([after?.unreadCount, after?.lastMessage?.text], [0, "reply"]);
    },
  );

  test("listChats pages each chat once, latest activity first", ["listChats"], async () => {
    const l = await linked();
    for (const from of ["15550004441", "15550004442", "15550004443"])
      await receive(l, from, `hi from ${from}`);
    const chats: ChatSummary[] = [];
    let page = await l.engine.listChats({ limit: 1 });
    for (;;) {
      assert.ok(page.items.length <= 1);
      chats.push(...page.items);
      if (!page.nextCursor) break;
      page = await l.engine.listChats({ limit: 1, cursor: page.nextCursor });
    }
    const ids = chats.map((c) => c.id);
    assert.equal(new Set(ids).size, ids.length, "no chat twice");
    for (const n of ["15550004441", "15550004442", "15550004443"]) assert.ok(ids.includes(`${n}@c.us`));
    // WhatsApp dates activity in seconds: chats of one second may come in either order.
    for (let i = 1; i < chats.length; i++) assert.ok(chats[i - 1].timestamp >= chats[i].timestamp);
  });

  test(
    "sendTyping works in a known chat; unknown chats are NOT_FOUND",
    ["sendTyping", "chatMessages", "markRead"],
    async () => {
      const l = await linked();
      await receive(l, "15550005555", "typing?");
      await l.engine.sendTyping("15550005555@c.us");
      for (const call of [
        () => l.engine.sendTyping("15559990001@c.us"),
        () => l.engine.markRead("15559990001@c.us"),
        () => l.engine.chatMessages("15559990001@c.us", {}),
      ])
        await assert.rejects(call(), { type: "NOT_FOUND", code: 404 });
    },
  );

  test("listContacts lists the people chatted with", ["listContacts"], async () => {
    const l = await linked();
    await receive(l, "15550006666", "a contact");
    const contacts = await l.engine.listContacts({ limit: 1000 });
    const c = contacts.items.find((x) => x.id === "15550006666@c.us");
    assert.ok(c, `contact in ${contacts.items.map((x) => x.id)}`);
    assert.equal(c.phoneNumber, "15550006666");
  });

  test(
    "groups: created with the session as admin, participants added and removed, failures named",
    ["createGroup", "listGroups", "addParticipants", "removeParticipants"],
    async () => {
      const { engine } = await linked("15550007000");
      const created = await engine.createGroup({
        name: "Contract",
        participants: ["15550007001", NOT_ON_WHATSAPP],
      });
      const { group } = created;
      assert.match(group.id, /@g\.us$/);
      assert.equal(group.name, "Contract");
      assert.deepEqual(
        group.participants.map((p) => [p.id, p.isAdmin]),
        [
          ["15550007000@c.us", true],
          ["15550007001@c.us", false],
        ],
      );
      assert.deepEqual(created.failed, [{ id: `${NOT_ON_WHATSAPP}@c.us`, reason: "not_on_whatsapp" }]);
      assert.ok((await engine.listGroups({})).items.some((g) => g.id === group.id));
      const added = await engine.addParticipants(group.id, ["15550007002"]);
      assert.equal(added.group.participants.length, 3);
      assert.deepEqual(added.failed, []);
      const removed = await engine.removeParticipants(group.id, ["15550007001", "15550007009"]);
      assert.deepEqual(
        removed.group.participants.map((p) => p.id),
        ["15550007000@c.us", "15550007002@c.us"],
      );
      assert.deepEqual(removed.failed, [{ id: "15550007009@c.us", reason: "not_participant" }]);
      await assert.rejects(engine.addParticipants("120363000000000001@g.us", ["15550007003"]), {
        type: "NOT_FOUND",
      });
    },
  );
}
