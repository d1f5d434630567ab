// The console commands against a stand-in broker (only `call` is used): what an operator reads.
import { strict as assert } from "node:assert";
import type { ServiceBroker } from "moleculer";
import { InvalidStateError, NotFoundError } from "../../../src/errors.ts";
import { drawQr, replCommands } from "../../../src/repl/commands.ts";
import { CLUSTER_ACTIONS } from "../../../src/placement/actions.ts";

type Handler = (params: any) => unknown;

function setup(handlers: Record<string, Handler>) {
  const printed: string[] = [];
  const calls: [string, unknown][] = [];
  const broker = {
    call: async (action: string, params: unknown) => {
      calls.push([action, params]);
      const h = handlers[action];
      if (!h) throw new Error(`unexpected call ${action}`);
      return h(params);
    },
  } as unknown as ServiceBroker;
  const commands = Object.fromEntries(
    replCommands((t) => printed.push(t)).map((c) => [c.command.split(" ")[0], c]),
  );
  const run = async (name: string, args: Record<string, unknown> = {}) => {
    printed.length = 0;
    await commands[name].action(broker, args);
    return printed.join("\n");
  };
  return { run, calls };
}

describe("repl/commands", () => {
  it("cluster: workers first, totals over workers only, draining counted", async () => {
    const { run } = setup({
      [CLUSTER_ACTIONS.nodes]: () => ({
        items: [
          { nodeId: "gw", pid: null, host: "h", services: ["api"], capacity: 0, sessions: 0, worker: false },
          {
            nodeId: "w2",
            pid: 2,
            host: "h",
            services: ["session"],
            capacity: 50,
            sessions: 3,
            draining: true,
            worker: true,
          },
          { nodeId: "w1", pid: 1, host: "h", services: ["session"], capacity: 40, sessions: 7, worker: true },
        ],
      }),
    });
    const out = await run("cluster");
    const lines = out.split("\n");
    assert.deepEqual(
      lines.slice(2, 5).map((l) => l.split(/\s+/)[0]),
      ["w1", "w2", "gw"],
    );
    assert.match(lines[4], /^gw\s+-\s+h\s+api\s+-\s+-\s+-$/);
    assert.equal(lines.at(-1), "2 worker(s), 10 session(s), capacity 90, 1 draining; 1 other node(s)");
  });

  it("rebalance: a table of the moves, or a sentence when nothing moved", async () => {
    let moved: unknown[] = [{ workspaceId: "ws1", from: "w1", to: "w2" }];
    const { run } = setup({ [CLUSTER_ACTIONS.rebalance]: () => ({ moved }) });
    const out = await run("rebalance");
    assert.match(
      out,
      /^workspace\s+from\s+to\n-+\s+-+\s+-+\nws1\s+w1\s+w2\nrebalance: 1 workspace\(s\) moved$/,
    );
    moved = [];
    assert.equal(
      await run("rebalance"),
      "rebalance: every workspace is on its placement owner; nothing moved",
    );
  });

  it("qr: finds the workspace by account id alone, or says why there is no QR", async () => {
    let scanning = true;
    const { run, calls } = setup({
      "accounts.lookup": () => ({
        id: "acc_1",
        workspaceId: "ws9",
        status: scanning ? "qr_scanning" : "connected",
      }),
      "accounts.qr": () => {
        if (!scanning) throw new InvalidStateError("not scanning");
        return { qr: "2@payload", dataUrl: "", seq: 4, expiresAt: Date.now() + 20500 };
      },
    });
    const out = await run("qr", { accountId: "acc_1" });
    assert.ok(out.startsWith(await drawQr("2@payload")));
    assert.match(out, /account acc_1 \(workspace ws9\) · QR #4 · valid (20|21)s more$/);
    assert.deepEqual(calls[1], ["accounts.qr", { workspaceId: "ws9", accountId: "acc_1" }]);
    scanning = false;
    assert.equal(
      await run("qr", { accountId: "acc_1" }),
      "account acc_1 is connected: it shows no QR code now",
    );
  });

  it("a failed call prints its message and type, never a stack", async () => {
    const { run } = setup({
      "accounts.lookup": () => {
        throw new NotFoundError("Account", "acc_x");
      },
    });
    assert.equal(await run("qr", { accountId: "acc_x" }), "error: Account 'acc_x' not found [NOT_FOUND 404]");
  });
  it("send: finds the account's workspace, sends the words as one text, prints the result", async () => {
    const { run, calls } = setup({
      "accounts.lookup": () => ({ id: "acc_1", workspaceId: "ws1", status: "connected" }),
      "accounts.sendMessage": () => ({
        id: "true_49151@c.us_3EB0AA",
        status: "sent",
        at: "2026-01-01T00:00:00.000Z",
      }),
    });
    const out = await run("send", { accountId: "acc_1", to: "49151", text: ["hello", "there"] });
    assert.deepEqual(calls.at(-1), [
      "accounts.sendMessage",
      { workspaceId: "ws1", accountId: "acc_1", to: "49151", text: "hello there" },
    ]);
    assert.equal(out, "sent true_49151@c.us_3EB0AA · from account acc_1 (workspace ws1) to 49151");
    assert.match(await run("send", { accountId: "acc_1", to: "49151" }), /^usage: send/);
  });

  it("send: a refused send prints its reason and type", async () => {
    const { run } = setup({
      "accounts.lookup": () => ({ id: "acc_1", workspaceId: "ws1" }),
      "accounts.sendMessage": () => {
        throw new InvalidStateError("Cannot send a message: the session is qr");
      },
    });
    assert.equal(
      await run("send", { accountId: "acc_1", to: "49151", text: ["x"] }),
      "error: Cannot send a message: the session is qr [INVALID_STATE 409]",
    );
  });

  it("chats: the account's chats in its workspace, unread counts, and the next page's cursor", async () => {
    const { run, calls } = setup({
      "accounts.lookup": () => ({ id: "acc_1", workspaceId: "ws1" }),
      "accounts.chats": () => ({
        items: [
          {
            id: "15550000003@c.us",
            name: "Contact 0003",
            isGroup: false,
            unreadCount: 2,
            timestamp: 1700000000,
            lastMessage: { text: "hello", fromMe: false },
          },
        ],
        nextCursor: "abc",
      }),
    });
    const out = await run("chats", { accountId: "acc_1" });
    assert.deepEqual(calls.at(-1), ["accounts.chats", { workspaceId: "ws1", accountId: "acc_1" }]);
    assert.match(out, /15550000003@c\.us\s+Contact 0003\s+2\s+2023-11-14T22:13:20\.000Z\s+← hello/);
    assert.match(out, /1 chat\(s\) of account acc_1 \(workspace ws1\) \(more: GET …\/chats\?cursor=abc\)/);
  });

  it("chats: an account that is not connected prints why", async () => {
    const { run } = setup({
      "accounts.lookup": () => ({ id: "acc_1", workspaceId: "ws1" }),
      "accounts.chats": () => {
        throw new InvalidStateError("Cannot list chats: the session is qr");
      },
    });
    assert.equal(
      await run("chats", { accountId: "acc_1" }),
      "error: Cannot list chats: the session is qr [INVALID_STATE 409]",
    );
  });

  it("text from data (names, messages, reasons, errors) reaches the terminal without control characters", async () => {
    const esc = (text: string) => `${text}\u001b]52;c;aGk=\u0007\u001b[2J`;
    const shown = (text: string) => `${text}\\u001b]52;c;aGk=\\u0007\\u001b[2J`;
    let chats: unknown[] = [];
    const { run } = setup({
      "accounts.list": () => ({ items: [{ id: "acc_1", name: esc("Shop"), status: "connected" }] }),
      "accounts.lookup": () => ({
        id: "acc_1",
        workspaceId: esc("ws1"),
        status: "failed",
        reason: esc("gone"),
      }),
      "accounts.qr": () => {
        throw new InvalidStateError("not scanning");
      },
      "accounts.chats": () => ({ items: chats, nextCursor: esc("c") }),
      "accounts.sendMessage": () => {
        throw new InvalidStateError(esc("refused"));
      },
      [CLUSTER_ACTIONS.rebalance]: () => ({
        moved: [],
        failed: [{ workspaceId: "ws1", from: "w1", to: "w2", reason: esc("busy") }],
      }),
    });
    const outputs: Record<string, string> = {
      accounts: await run("accounts", { workspaceId: "ws1" }),
      qr: await run("qr", { accountId: "acc_1" }),
      noChats: await run("chats", { accountId: "acc_1" }),
      send: await run("send", { accountId: "acc_1", to: "49151", text: ["x"] }),
      rebalance: await run("rebalance"),
    };
    chats = [
      { id: "1@c.us", name: esc("Eve"), unreadCount: 1, lastMessage: { text: esc("hi"), fromMe: false } },
    ];
    outputs.chats = await run("chats", { accountId: "acc_1" });
    for (const [name, out] of Object.entries(outputs))
      assert.ok(!/(?!\n)\p{Cc}/u.test(out), `${name}: ${JSON.stringify(out)}`);
    assert.ok(outputs.accounts.includes(`acc_1  ${shown("Shop")}  `), outputs.accounts);
    assert.equal(outputs.qr, `account acc_1 is failed (${shown("gone")}): it shows no QR code now`);
    assert.equal(outputs.noChats, `account acc_1 (workspace ${shown("ws1")}) has no chats`);
    assert.equal(outputs.send, `error: ${shown("refused")} [INVALID_STATE 409]`);
    assert.ok(outputs.rebalance.startsWith(`rebalance: ws1 was not moved from w1 to w2: ${shown("busy")}\n`));
    assert.ok(outputs.chats.includes(shown("Eve")) && outputs.chats.includes(shown("← hi")));
    assert.ok(outputs.chats.endsWith(`(more: GET …/chats?cursor=${shown("c")})`));
  });
});
