// The console commands against a stand-in broker (`call`, and a logger): what an operator reads. Each
// line goes through moleculer-repl itself (its word splitting, commander, the arguments it hands an
// action), as typed at the `switchboard $` prompt.
import { strict as assert } from "node:assert";
import nodeRepl from "node:repl";
import { Errors, type ServiceBroker } from "moleculer";
import REPL from "moleculer-repl";
import { InvalidStateError, NotFoundError } from "../../../src/errors.ts";
import { drawQr, replCommands } from "../../../src/repl/commands.ts";
import { CLUSTER_ACTIONS } from "../../../src/placement/actions.ts";

type Handler = (params: any) => unknown;
type Evaluator = (
  this: unknown,
  line: string,
  context: object,
  file: string,
  cb: () => void,
) => Promise<void>;

let handlers: Record<string, Handler> = {};
const printed: string[] = [];
const calls: [string, unknown][] = [];
const broker = {
  call: async (action: string, params: unknown) => {
    calls.push([action, params]);
    const h = handlers[action];
    if (!h) throw new Error(`unexpected call ${action}`);
    return h(params);
  },
  logger: {
    warn: () => undefined,
    error: (...args: unknown[]) => assert.fail(`moleculer-repl logged an error: ${args.join(" ")}`),
  },
} as unknown as ServiceBroker;

/** Registers the commands with moleculer-repl, whose terminal is swapped for one keeping its line
 * evaluator (it reads process.stdin otherwise). Once per process: moleculer-repl keeps one program. */
function startRepl(): (line: string) => Promise<void> {
  const start = nodeRepl.start;
  let evaluate: Evaluator | undefined;
  const server = { context: { broker }, setupHistory: () => undefined, on: () => undefined };
  Object.assign(nodeRepl, {
    start: (opts: { eval: Evaluator }) => ((evaluate = opts.eval), server),
  });
  try {
    REPL(broker, {
      delimiter: "switchboard $",
      customCommands: replCommands((t) => printed.push(t)) as never,
    });
  } finally {
    Object.assign(nodeRepl, { start });
  }
  return (line) => evaluate!.call(server, line, server.context, "repl", () => undefined);
}

let evaluate: (line: string) => Promise<void>;

function setup(answers: Record<string, Handler>) {
  handlers = answers;
  calls.length = 0;
  /** Types `line` at the prompt: what the command printed. */
  const run = async (line: string) => {
    printed.length = 0;
    await evaluate(line);
    return printed.join("\n");
  };
  return { run, calls };
}

describe("repl/commands", () => {
  before(() => (evaluate = startRepl()));

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

  it("drain: the workspaces handed off, those kept on the node, and the sessions still running there", async () => {
    let result = { nodeId: "w1", moved: 3, kept: 0, sessions: 0 };
    const { run, calls } = setup({ [CLUSTER_ACTIONS.drain]: () => result });
    assert.equal(
      await run("drain w1"),
      "drained w1: 3 workspace(s) handed off, 0 kept on it; 0 session(s) still running on w1",
    );
    assert.deepEqual(calls.at(-1), [CLUSTER_ACTIONS.drain, { nodeId: "w1" }]);
    // No other worker: the workspace stays, and so do its two sessions.
    result = { nodeId: "w1", moved: 0, kept: 1, sessions: 2 };
    assert.equal(
      await run("drain w1"),
      "drained w1: 0 workspace(s) handed off, 1 kept on it; 2 session(s) still running on w1",
    );
  });

  it("placement: unplaced only when the placement is not found; no `cluster` service is a failure", async () => {
    let answer: () => unknown = () => {
      throw new NotFoundError("Placement", "ws1");
    };
    const { run } = setup({ [CLUSTER_ACTIONS.placement]: () => answer() });
    assert.equal(await run("placement ws1"), "workspace ws1 is not placed (its first call places it)");
    // Every worker down: Moleculer's own 404.
    answer = () => {
      throw new Errors.ServiceNotFoundError({ action: CLUSTER_ACTIONS.placement });
    };
    assert.equal(
      await run("placement ws1"),
      "error: Service 'cluster.placement' is not found. [SERVICE_NOT_FOUND 404]",
    );
    answer = () => ({ workspaceId: "ws1", node: "w2", epoch: 7, since: 0 });
    assert.match(await run("placement ws1"), /^workspace\s+ws1\nnode\s+w2\nepoch\s+7\nsince\s+1970-/);
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
    const out = await run("qr acc_1");
    assert.ok(out.startsWith(await drawQr("2@payload")));
    assert.match(out, /account acc_1 \(workspace ws9\) · QR #4 · valid (20|21)s more$/);
    assert.deepEqual(calls[1], ["accounts.qr", { workspaceId: "ws9", accountId: "acc_1" }]);
    scanning = false;
    assert.equal(await run("qr acc_1"), "account acc_1 is connected: it shows no QR code now");
  });

  it("a failed call prints its message and type, never a stack", async () => {
    const { run } = setup({
      "accounts.lookup": () => {
        throw new NotFoundError("Account", "acc_x");
      },
    });
    assert.equal(await run("qr acc_x"), "error: Account 'acc_x' not found [NOT_FOUND 404]");
  });
  it("send: finds the account's workspace, sends every word of the line as one text, prints the result", async () => {
    const { run, calls } = setup({
      "accounts.lookup": () => ({ id: "acc_1", workspaceId: "ws1", status: "connected" }),
      "accounts.sendMessage": () => ({
        id: "true_49151@c.us_3EB0AA",
        status: "sent",
        at: "2026-01-01T00:00:00.000Z",
      }),
    });
    const sent = () => (calls.at(-1)![1] as { text: string }).text;
    const out = await run("send acc_1 491511234567 Meeting moved to 3pm");
    assert.deepEqual(calls.at(-1), [
      "accounts.sendMessage",
      { workspaceId: "ws1", accountId: "acc_1", to: "491511234567", text: "Meeting moved to 3pm" },
    ]);
    assert.equal(out, "sent true_49151@c.us_3EB0AA · from account acc_1 (workspace ws1) to 491511234567");
    // Quoted text arrives as typed; words that look like options are part of the message.
    await run(`send acc_1 49151 "Meeting  moved, it's 3pm"`);
    assert.equal(sent(), "Meeting  moved, it's 3pm");
    await run("send acc_1 49151 -5 degrees --really");
    assert.equal(sent(), "-5 degrees --really");
    assert.match(await run("send acc_1 49151"), /^usage: send/);
  });

  it("send: a refused send prints its reason and type", async () => {
    const { run } = setup({
      "accounts.lookup": () => ({ id: "acc_1", workspaceId: "ws1" }),
      "accounts.sendMessage": () => {
        throw new InvalidStateError("Cannot send a message: the session is qr");
      },
    });
    assert.equal(
      await run("send acc_1 49151 x"),
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
    const out = await run("chats acc_1");
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
    assert.equal(await run("chats acc_1"), "error: Cannot list chats: the session is qr [INVALID_STATE 409]");
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
      accounts: await run("accounts ws1"),
      qr: await run("qr acc_1"),
      noChats: await run("chats acc_1"),
      send: await run("send acc_1 49151 x"),
      rebalance: await run("rebalance"),
    };
    chats = [
      { id: "1@c.us", name: esc("Eve"), unreadCount: 1, lastMessage: { text: esc("hi"), fromMe: false } },
    ];
    outputs.chats = await run("chats acc_1");
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
