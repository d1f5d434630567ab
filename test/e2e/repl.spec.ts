// The operator's console for real: `tsx scripts/repl.ts` as its own process, configured only by the
// environment, joins a running cluster (gateway + two workers over the run's NATS) and is driven
// through its stdin; what `cluster`, `placement` and `accounts` print is checked against the cluster.
// Its request timeout is 5 s: commands whose work takes longer (drain, rebalance) must not depend on it.
import { strict as assert } from "node:assert";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { join } from "node:path";
import { configOf } from "../../src/config.ts";
import { sentBySimulatedEngine } from "../../src/engines/simulated.ts";
import { ROOT } from "../../src/dev/servers.ts";
import { drawQr } from "../../src/repl/commands.ts";
import { waitFor } from "../support/wait.ts";
import { CLUSTER_ACTIONS } from "../../src/placement/actions.ts";
import { workerNodeOf } from "../../src/placement/worker-node.ts";
import { startSwitchboard, type RunningSwitchboard } from "./support.ts";

/** A running console: what it printed so far, and a way to type a line and wait for the answer. */
class ReplProcess {
  output = "";
  readonly exited: Promise<number | null>;
  constructor(readonly child: ChildProcessWithoutNullStreams) {
    child.stdout.on("data", (b: Buffer) => (this.output += b.toString()));
    child.stderr.on("data", (b: Buffer) => (this.output += b.toString()));
    this.exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
  }

  /** Types `line` and resolves what was printed until `done` matches it. */
  async run(line: string, done: RegExp, timeoutMs = 15000): Promise<string> {
    const from = this.output.length;
    this.child.stdin.write(`${line}\n`);
    return waitFor(
      () => {
        const out = this.output.slice(from);
        return done.test(out) ? out : undefined;
      },
      { what: `"${line}" to print ${done}; printed so far:\n${this.output}`, timeoutMs },
    );
  }
}

/** Rows of the first table in `out` (header line, dashed rule, rows), as header → cell maps. */
function parseTable(out: string): Record<string, string>[] {
  const lines = out.split("\n").map((l) => l.replace(/^.*?\$ /, "").trimEnd());
  const rule = lines.findIndex((l) => /^-+( +-+)*$/.test(l));
  assert.ok(rule > 0, `no table in:\n${out}`);
  const headers = lines[rule - 1].trim().split(/\s+/);
  const rows: Record<string, string>[] = [];
  for (const line of lines.slice(rule + 1)) {
    const cells = line.trim().split(/\s{2,}/);
    if (cells.length !== headers.length) break;
    rows.push(Object.fromEntries(headers.map((h, i) => [h, cells[i]])));
  }
  return rows;
}

describe("repl (npm run repl) against a real cluster", function () {
  this.timeout(60000);
  let sb: RunningSwitchboard;
  let repl: ReplProcess;
  const ws = `repl${randomBytes(3).toString("hex")}`;
  let accountId = "";
  let key = "";

  before(async () => {
    // Production QR timings: the account stays scanning for the whole test.
    sb = await startSwitchboard({
      workers: 2,
      name: "repl",
      shared: { qr: { firstTtlMs: 60000, refreshMs: 20000, max: 6 } },
    });
    // A workspace with one account: placed on a worker, one session running there.
    key = await sb.workspaceKey(ws);
    accountId = (await sb.rest("POST", "/api/v1/accounts", key, { name: "console" })).id;
    await waitFor(
      async () => (await sb.rest("GET", `/api/v1/accounts/${accountId}`, key)).status === "qr_scanning",
      { what: "the account to show a QR" },
    );
    const cfg = { switchboard: configOf(sb.gateway) };
    const child = spawn(join(ROOT, "node_modules", ".bin", "tsx"), [join(ROOT, "scripts", "repl.ts")], {
      cwd: ROOT,
      env: {
        ...process.env,
        NATS_URL: cfg.switchboard.natsUrl,
        MONGO_URL: cfg.switchboard.mongoUrl,
        NAMESPACE: sb.cluster.namespace,
        ADMIN_API_KEY: sb.adminKey, // the operator signs its cluster commands with it
        HEARTBEAT_INTERVAL_MS: "1000",
        HEARTBEAT_TIMEOUT_MS: "3000",
        LOG_LEVEL: "warn",
        NODE_ID: "",
        REQUEST_TIMEOUT_MS: "5000",
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    repl = new ReplProcess(child);
    await waitFor(() => /switchboard \$/.test(repl.output), {
      what: `the prompt; got:\n${repl.output}`,
      timeoutMs: 30000,
    });
  });

  after(async () => {
    if (repl && repl.child.exitCode === null) repl.child.kill("SIGTERM");
    await sb?.stop();
  });

  it("`cluster` lists every live node: workers with pid, host, capacity and sessions, then the others", async () => {
    // The owner's liveness record counts the session within a lease renewal.
    const placement = (await sb.gateway.call(CLUSTER_ACTIONS.placement, { workspaceId: ws })) as {
      node: string;
    };
    type NodeItem = { nodeId: string; capacity: number; sessions: number; worker: boolean };
    const nodes = async () =>
      ((await sb.gateway.call(CLUSTER_ACTIONS.nodes, {})) as { items: NodeItem[] }).items;
    await waitFor(async () => (await nodes()).find((n) => n.nodeId === placement.node)?.sessions === 1, {
      what: "the owner to report one session",
    });
    const out = await repl.run("cluster", /\d+ worker\(s\), \d+ session\(s\)/);
    const rows = parseTable(out);
    const expected = await nodes();

    assert.deepEqual(
      rows.map((r) => r.node),
      [...expected]
        .sort((a, b) => Number(b.worker) - Number(a.worker) || a.nodeId.localeCompare(b.nodeId))
        .map((n) => n.nodeId),
    );
    assert.deepEqual(
      rows.slice(0, 2).map((r) => r.node),
      ["worker-1", "worker-2"],
    );
    for (const row of rows.slice(0, 2)) {
      const node = expected.find((n) => n.nodeId === row.node)!;
      assert.equal(Number(row.pid), process.pid, "the workers run in the test process");
      assert.equal(row.host, hostname());
      assert.equal(row.services, "session");
      assert.equal(Number(row.capacity), node.capacity);
      assert.equal(Number(row.sessions), row.node === placement.node ? 1 : 0);
      assert.equal(row.draining, "no");
    }
    // The gateway is a node, not a worker: no capacity, no sessions. (A console may be listed too,
    // once the workers have heard of it: it hosts no service, so Moleculer announces it lazily.)
    const others = rows.slice(2);
    assert.equal(others[0].node, "gateway");
    assert.match(others[0].services, /api/);
    for (const row of others) assert.deepEqual([row.capacity, row.sessions, row.draining], ["-", "-", "-"]);
    assert.match(
      out,
      new RegExp(`2 worker\\(s\\), 1 session\\(s\\), capacity 100; ${others.length} other node\\(s\\)`),
    );
  });

  it("`placement <ws>` names the owner and epoch the placement table holds", async () => {
    const placement = (await sb.gateway.call(CLUSTER_ACTIONS.placement, { workspaceId: ws })) as {
      node: string;
      epoch: number;
    };
    const out = await repl.run(`placement ${ws}`, /epoch\s+\d+/);
    assert.match(out, new RegExp(`workspace\\s+${ws}\\n`));
    assert.match(out, new RegExp(`node\\s+${placement.node}\\n`));
    assert.match(out, new RegExp(`epoch\\s+${placement.epoch}\\n`));
    // …and that owner is where the session actually runs.
    const local = (await sb.gateway.call("session.local", {}, { nodeID: placement.node })) as {
      accountId: string;
    }[];
    assert.ok(local.some((s) => s.accountId === accountId));
  });

  it("`placement` of a workspace never seen says it is not placed", async () => {
    const out = await repl.run("placement nobody-here", /not placed|error/);
    assert.match(out, /workspace nobody-here is not placed/);
  });

  it("`accounts <ws>` lists the workspace's accounts with their status", async () => {
    const out = await repl.run(`accounts ${ws}`, new RegExp(accountId));
    const rows = parseTable(out);
    assert.equal(rows.length, 1);
    assert.equal(rows[0].id, accountId);
    assert.equal(rows[0].name, "console");
    assert.equal(rows[0].status, "qr_scanning");
  });

  it("`qr <accountId>` finds the account's workspace and draws its current QR in the terminal", async () => {
    const current = (await sb.gateway.call("accounts.qr", { workspaceId: ws, accountId })) as {
      qr: string;
      seq: number;
    };
    const out = await repl.run(`qr ${accountId}`, /QR #\d+ · valid \d+s more/);
    assert.ok(out.includes(await drawQr(current.qr)), `the drawn QR is not the current one:\n${out}`);
    assert.match(out, new RegExp(`account ${accountId} \\(workspace ${ws}\\) · QR #${current.seq} `));
  });

  it("`rebalance` moves nothing on a balanced cluster; `drain <node>` hands the workspace to the other worker", async () => {
    assert.match(await repl.run("rebalance", /rebalance:/), /nothing moved/);
    const before = (await sb.gateway.call(CLUSTER_ACTIONS.placement, { workspaceId: ws })) as {
      node: string;
      epoch: number;
    };
    const other = before.node === "worker-1" ? "worker-2" : "worker-1";
    const out = await repl.run(`drain ${before.node}`, /drained|error/);
    assert.match(
      out,
      new RegExp(
        `drained ${before.node}: 1 workspace\\(s\\) handed off, 0 kept on it; ` +
          `0 session\\(s\\) still running on ${before.node}`,
      ),
    );
    const after = await repl.run(`placement ${ws}`, /epoch\s+\d+/);
    assert.match(after, new RegExp(`node\\s+${other}\\n`));
    const epoch = Number(/epoch\s+(\d+)/.exec(after)![1]);
    assert.ok(epoch > before.epoch, `the hand-off is a new epoch (${before.epoch} → ${epoch})`);
    // The drained node reports `draining` (and no sessions) from its next lease renewal on.
    await waitFor(
      async () => {
        const row = parseTable(await repl.run("cluster", /worker\(s\)/)).find((r) => r.node === before.node);
        return row?.draining === "yes" && row.sessions === "0";
      },
      { what: `${before.node} to show draining with no sessions`, intervalMs: 200 },
    );
    // `undrain` ends it (and restores what this test changed).
    assert.match(
      await repl.run(`undrain ${before.node}`, /takes workspaces|error/),
      /takes workspaces again/,
    );
    await waitFor(
      async () =>
        parseTable(await repl.run("cluster", /worker\(s\)/)).find((r) => r.node === before.node)?.draining ===
        "no",
      { what: `${before.node} to show it no longer drains`, intervalMs: 200 },
    );
  });

  it("`qr` of a connected account says there is no QR instead of failing", async () => {
    await waitFor(
      () =>
        sb
          .rest("POST", `/api/v1/accounts/${accountId}/simulate/scan`, key, { phoneNumber: "+15550009876" })
          .then(() => true),
      { what: "the moved session to accept a scan" },
    );
    await waitFor(
      async () => (await sb.rest("GET", `/api/v1/accounts/${accountId}`, key)).status === "connected",
      {
        what: "the account to connect",
      },
    );
    const out = await repl.run(`qr ${accountId} ${ws}`, /no QR|error/);
    assert.match(out, new RegExp(`account ${accountId} is connected: it shows no QR code now`));
  });

  it("`send <accountId> <to> <text…>` sends every word of the line, quoted or not", async () => {
    const sent = () => sentBySimulatedEngine(accountId).at(-1);
    const out = await repl.run(`send ${accountId} 491511234567 Meeting moved to 3pm`, /sent|error/);
    assert.match(
      out,
      new RegExp(`sent \\S+ · from account ${accountId} \\(workspace ${ws}\\) to 491511234567`),
    );
    assert.deepEqual([sent()?.to, sent()?.text], ["491511234567", "Meeting moved to 3pm"]);
    await repl.run(`send ${accountId} 491511234567 "it's  at 3pm"`, /sent|error/);
    assert.equal(sent()?.text, "it's  at 3pm");
  });

  it("`rebalance` of hand-offs taking seconds each finishes past the console's request timeout", async () => {
    // Every workspace onto worker-2 (worker-1 drains while they are placed), then worker-1 back.
    const batch = Array.from({ length: 10 }, (_, i) => `${ws}-r${i}`);
    assert.match(await repl.run("drain worker-1", /drained|error/), /drained worker-1/);
    for (const workspaceId of batch) await sb.gateway.call("session.ping", { workspaceId });
    assert.match(await repl.run("undrain worker-1", /takes workspaces|error/), /takes workspaces again/);
    await waitFor(
      async () => {
        for (const worker of sb.workers) {
          const { items } = (await sb.gateway.call(CLUSTER_ACTIONS.nodes, {}, { nodeID: worker.nodeID })) as {
            items: { nodeId: string; draining: boolean }[];
          };
          if (items.find((n) => n.nodeId === "worker-1")?.draining !== false) return false;
        }
        return true;
      },
      { what: "every worker to see worker-1 take workspaces again" },
    );
    // Each hand-off of worker-2 takes 2 s more, standing in for a slow flush of its sessions' state.
    const ownership = workerNodeOf(sb.workers.find((w) => w.nodeID === "worker-2")!)!.ownership;
    const handOff = ownership.handOff;
    ownership.handOff = async (workspaceId, target) => {
      await new Promise((resolve) => setTimeout(resolve, 2000));
      return handOff.call(ownership, workspaceId, target);
    };
    try {
      const out = await repl.run("rebalance", /rebalance: .*(moved|nothing)|error/, 60000);
      const moved = Number(/rebalance: (\d+) workspace\(s\) moved/.exec(out)?.[1]);
      assert.ok(moved >= 3, `three hand-offs or more (6 s, past the 5 s timeout):\n${out}`);
      assert.doesNotMatch(out, /was not moved|error/);
      for (const row of parseTable(out)) assert.deepEqual([row.from, row.to], ["worker-2", "worker-1"]);
    } finally {
      ownership.handOff = handOff;
    }
  });

  it("`quit` stops the console's broker and exits 0", async () => {
    repl.child.stdin.write("quit\n");
    assert.equal(await repl.exited, 0);
  });
});
