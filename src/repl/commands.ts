// The operator's console commands (moleculer-repl custom commands, see scripts/repl.ts). Each command
// calls the same actions the REST gateway does and prints a plain table, never raw JSON.
import type { ServiceBroker } from "moleculer";
import qrcodeTerminal from "qrcode-terminal";
import { CLUSTER_ACTIONS } from "../placement/actions.ts";
import { callAccounts } from "../accounts/calls.ts";
import { ERR_NOT_FOUND } from "../errors.ts";
import type { AccountView, QrView } from "../accounts/types.ts";
import { chatsCommand } from "./chats.ts";
import { formatRecord, formatTable, terminalLine, type Column } from "./table.ts";

/** A node as `cluster.nodes` lists it (DESIGN.md, "Interfaces"). */
export interface NodeRow {
  nodeId: string;
  pid?: number;
  host?: string;
  services?: string[];
  capacity?: number;
  sessions?: number;
  draining?: boolean;
  /** False for nodes that run no `session` service (gateways, consoles): no lease, no capacity. */
  worker?: boolean;
}

export interface PlacementRow {
  workspaceId: string;
  node?: string | null;
  epoch?: number | null;
  since?: number | string | null;
}

/** What a command needs from the REPL: the broker and somewhere to print. */
export interface ReplIO {
  broker: ServiceBroker;
  print: (text: string) => void;
}

/** A command line as commander parsed it (what moleculer-repl hands a custom `parse`). */
export interface ParsedCommandLine {
  /** The words after the command name, quotes removed, in the order typed. */
  args: string[];
  /** What `parse` sets: the `args` the command's action receives. */
  params?: Record<string, unknown>;
}

/** The shape moleculer-repl 0.8 expects in `replOptions.customCommands`. */
export interface ReplCommandDefinition {
  command: string;
  description: string;
  alias?: string[];
  /** Words starting with `-` are the command's to read, not options to refuse. */
  allowUnknownOptions?: boolean;
  /** Sets `line.params`; without it each declared argument gets one word of the line. */
  parse?: (line: ParsedCommandLine) => void;
  action: (broker: ServiceBroker, args: Record<string, unknown>) => Promise<void>;
}

const NODE_COLUMNS: Column<NodeRow>[] = [
  { title: "node", value: (n) => n.nodeId },
  { title: "pid", value: (n) => n.pid, right: true },
  { title: "host", value: (n) => n.host },
  { title: "services", value: (n) => n.services },
  { title: "capacity", value: (n) => (n.worker === false ? null : n.capacity), right: true },
  { title: "sessions", value: (n) => (n.worker === false ? null : n.sessions), right: true },
  { title: "draining", value: (n) => (n.worker === false ? null : Boolean(n.draining)) },
];

const ACCOUNT_COLUMNS: Column<AccountView>[] = [
  { title: "id", value: (a) => a.id },
  { title: "name", value: (a) => a.name },
  { title: "engine", value: (a) => a.engine },
  { title: "status", value: (a) => a.status },
  { title: "reason", value: (a) => a.reason },
  { title: "phone", value: (a) => a.phoneNumber },
  { title: "node", value: (a) => a.node },
  { title: "updated", value: (a) => a.updatedAt },
];

function itemsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  return ((result as { items?: T[] } | null)?.items ?? []) as T[];
}

function errorText(err: unknown): string {
  const e = err as { message?: string; type?: string; code?: number };
  const kind = e?.type ? ` [${e.type}${e.code ? ` ${e.code}` : ""}]` : "";
  return terminalLine`error: ${e?.message ?? String(err)}${kind}`;
}

/** Draws a QR payload with terminal block characters. */
export function drawQr(payload: string): Promise<string> {
  return new Promise((resolve) => qrcodeTerminal.generate(payload, { small: true }, (out) => resolve(out)));
}

export async function clusterCommand({ broker, print }: ReplIO): Promise<void> {
  const nodes = itemsOf<NodeRow>(await broker.call(CLUSTER_ACTIONS.nodes, {}));
  // Workers first (what an operator looks for), then gateways and consoles.
  nodes.sort(
    (a, b) => Number(a.worker === false) - Number(b.worker === false) || a.nodeId.localeCompare(b.nodeId),
  );
  const workers = nodes.filter((n) => n.worker !== false);
  const sessions = workers.reduce((sum, n) => sum + (n.sessions ?? 0), 0);
  const capacity = workers.reduce((sum, n) => sum + (n.capacity ?? 0), 0);
  const draining = workers.filter((n) => n.draining).length;
  print(formatTable(NODE_COLUMNS, nodes, "(no live nodes)"));
  print(
    terminalLine`${workers.length} worker(s), ${sessions} session(s), capacity ${capacity}` +
      (draining ? terminalLine`, ${draining} draining` : "") +
      terminalLine`; ${nodes.length - workers.length} other node(s)`,
  );
}

export async function accountsCommand({ broker, print }: ReplIO, workspaceId: string): Promise<void> {
  const accounts = (await callAccounts(broker, "list", { workspaceId })).items;
  print(formatTable(ACCOUNT_COLUMNS, accounts, `(no accounts in workspace ${workspaceId})`));
}

export async function placementCommand({ broker, print }: ReplIO, workspaceId: string): Promise<void> {
  const p = (await broker.call(CLUSTER_ACTIONS.placement, { workspaceId }).catch((err: { type?: string }) => {
    // Only the placement's own 404 means unplaced: no `cluster` service to ask is a 404 too.
    if (err?.type === ERR_NOT_FOUND) return null;
    throw err;
  })) as PlacementRow | null;
  if (!p?.node) {
    print(terminalLine`workspace ${workspaceId} is not placed (its first call places it)`);
    return;
  }
  const since = typeof p.since === "number" ? new Date(p.since).toISOString() : p.since;
  print(
    formatRecord([
      ["workspace", p.workspaceId ?? workspaceId],
      ["node", p.node],
      ["epoch", p.epoch],
      ["since", since],
    ]),
  );
}

export async function qrCommand(
  { broker, print }: ReplIO,
  accountId: string,
  workspaceId?: string,
): Promise<void> {
  const account = workspaceId
    ? await callAccounts(broker, "get", { workspaceId, accountId })
    : await callAccounts(broker, "lookup", { accountId });
  const ws = account.workspaceId;
  const qr: QrView | null = await callAccounts(broker, "qr", { workspaceId: ws, accountId }).catch(
    (err: { code?: number }) => {
      if (err?.code === 409) return null; // not scanning
      throw err;
    },
  );
  if (!qr) {
    const why = account.reason ? ` (${account.reason})` : "";
    print(terminalLine`account ${accountId} is ${account.status}${why}: it shows no QR code now`);
    return;
  }
  print(await drawQr(qr.qr));
  const left = Math.max(0, Math.round((qr.expiresAt - Date.now()) / 1000));
  print(terminalLine`account ${accountId} (workspace ${ws}) · QR #${qr.seq} · valid ${left}s more`);
}

/** Sends a text message from an account (found by id alone, as `qr` does). */
export async function sendCommand(
  { broker, print }: ReplIO,
  accountId: string,
  to: string,
  text: string,
): Promise<void> {
  if (!text) {
    print("usage: send <accountId> <to> <text…>");
    return;
  }
  const account = await callAccounts(broker, "lookup", { accountId });
  const r = await callAccounts(broker, "sendMessage", {
    workspaceId: account.workspaceId,
    accountId,
    to,
    text,
  });
  const id = r.id ? ` ${r.id}` : "";
  print(
    terminalLine`${r.status}${id} · from account ${accountId} (workspace ${account.workspaceId}) to ${to}`,
  );
}

/** Call options sending a drain (or undrain) straight to its node (when that node runs the action), so
 * the call carries this REPL's own admin signature rather than being forwarded by a node that has none. */
function nodeOf(broker: ServiceBroker, nodeId: string, action: string): { nodeID?: string } {
  return broker.registry?.getActionEndpointByNodeId(action, nodeId) ? { nodeID: nodeId } : {};
}

export async function drainCommand({ broker, print }: ReplIO, nodeId: string): Promise<void> {
  // No timeout of its own: the action's (minutes) applies, not this console's request timeout.
  const r = (await broker.call(
    CLUSTER_ACTIONS.drain,
    { nodeId },
    nodeOf(broker, nodeId, CLUSTER_ACTIONS.drain),
  )) as {
    nodeId?: string;
    moved?: number;
    kept?: number;
    failed?: { workspaceId: string; reason: string }[];
    sessions?: number;
  };
  const node = r?.nodeId ?? nodeId;
  for (const f of r?.failed ?? [])
    print(terminalLine`drain: ${f.workspaceId} was not handed off from ${node}: ${f.reason}`);
  // `kept`: workspaces no other worker took (none to take them): they stay, and go once one can.
  // `sessions`: what still runs on the node afterwards (the kept workspaces'), not what moved.
  print(
    terminalLine`drained ${node}: ${r?.moved ?? 0} workspace(s) handed off, ${r?.kept ?? 0} kept on it; ` +
      terminalLine`${r?.sessions ?? 0} session(s) still running on ${node}`,
  );
}

export async function undrainCommand({ broker, print }: ReplIO, nodeId: string): Promise<void> {
  const opts = nodeOf(broker, nodeId, CLUSTER_ACTIONS.undrain);
  const r = (await broker.call(CLUSTER_ACTIONS.undrain, { nodeId }, opts)) as { nodeId?: string };
  print(terminalLine`${r?.nodeId ?? nodeId} takes workspaces again`);
}

export async function rebalanceCommand({ broker, print }: ReplIO): Promise<void> {
  // No timeout of its own: the action's covers its hand-offs, one after another.
  const r = (await broker.call(CLUSTER_ACTIONS.rebalance, {})) as {
    moved?: unknown[];
    failed?: { workspaceId: string; from: string; to: string; reason: string }[];
  };
  const moved = (r?.moved ?? []) as Array<Record<string, unknown> | string>;
  for (const f of r?.failed ?? [])
    print(terminalLine`rebalance: ${f.workspaceId} was not moved from ${f.from} to ${f.to}: ${f.reason}`);
  if (!moved.length) {
    print(
      r?.failed?.length
        ? "rebalance: nothing moved"
        : "rebalance: every workspace is on its placement owner; nothing moved",
    );
    return;
  }
  const rows = moved.map((m) => (typeof m === "string" ? { workspaceId: m } : m));
  print(
    formatTable(
      [
        { title: "workspace", value: (m) => m.workspaceId },
        { title: "from", value: (m) => m.from },
        { title: "to", value: (m) => m.to ?? m.node },
      ],
      rows,
    ),
  );
  print(terminalLine`rebalance: ${moved.length} workspace(s) moved`);
}

/** moleculer-repl 0.8 gives each declared argument one word, so `[text...]` would be the message's first
 * word: `send` reads its arguments from the words of the line itself. */
function sendParams(line: ParsedCommandLine): void {
  const [accountId, to, ...words] = line.args;
  line.params = { accountId, to, text: words.join(" ") };
}

/** Commands run one after another: with input piped in (`printf 'cluster\n…' | npm run repl`) the REPL
 * reads every line at once, and the answers would otherwise interleave. */
let queue: Promise<void> = Promise.resolve();

/** Wraps a command so a failed call prints its reason instead of a stack trace. */
function guarded(
  print: (text: string) => void,
  run: (io: ReplIO, args: Record<string, unknown>) => Promise<void>,
): ReplCommandDefinition["action"] {
  return (broker, args) => {
    queue = queue.then(() => run({ broker, print }, args).catch((err) => print(errorText(err))));
    return queue;
  };
}

/** Our commands in moleculer-repl's custom command format. */
export function replCommands(print: (text: string) => void = (t) => console.log(t)): ReplCommandDefinition[] {
  const str = (v: unknown) => String(v ?? "");
  return [
    {
      command: "cluster",
      description: "Live workers: pid, host, services, capacity, sessions, draining",
      action: guarded(print, (io) => clusterCommand(io)),
    },
    {
      command: "accounts <workspaceId>",
      description: "Accounts of a workspace with their status",
      action: guarded(print, (io, a) => accountsCommand(io, str(a.workspaceId))),
    },
    {
      command: "placement <workspaceId>",
      description: "The node that owns a workspace, with its epoch",
      action: guarded(print, (io, a) => placementCommand(io, str(a.workspaceId))),
    },
    {
      command: "qr <accountId> [workspaceId]",
      description: "Draw the current QR code of a scanning account",
      action: guarded(print, (io, a) =>
        qrCommand(io, str(a.accountId), a.workspaceId ? str(a.workspaceId) : undefined),
      ),
    },
    {
      command: "send <accountId> <to> [text...]",
      // The REPL splits the line at spaces and takes quotes off: an apostrophe needs the text quoted.
      description: `Send a text message from an account to a phone number or chat id (quote text with ' or ")`,
      allowUnknownOptions: true,
      parse: sendParams,
      action: guarded(print, (io, a) => sendCommand(io, str(a.accountId), str(a.to), str(a.text))),
    },
    {
      command: "chats <accountId>",
      description: "Chats of a connected account, latest first, with unread counts",
      action: guarded(print, (io, a) => chatsCommand(io, str(a.accountId))),
    },
    {
      command: "drain <nodeId>",
      description: "Hand every workspace of a node to other workers (before stopping it)",
      action: guarded(print, (io, a) => drainCommand(io, str(a.nodeId))),
    },
    {
      command: "undrain <nodeId>",
      description: "End a node's drain: it takes workspaces again",
      action: guarded(print, (io, a) => undrainCommand(io, str(a.nodeId))),
    },
    {
      command: "rebalance",
      description: "Move workspaces whose placement owner changed (a batch at a time)",
      action: guarded(print, (io) => rebalanceCommand(io)),
    },
  ];
}
