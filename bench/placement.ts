// Placement quality, in one run, of our bounded-load weighted rendezvous hashing, Moleculer's
// built-in Shard strategy (the real class, instantiated as the registry does) and `workspace % N`
// (the old system), for N = 4, 8, 16 over 10,000 workspaces:
//   maxOverAvg    largest node load / average load
//   movedOnJoin   fraction of workspaces whose node changes when a node is added (fresh placement)
//   movedOnLeave  same when a node is removed (mean over every choice of leaver; worst also shown)
// and the cost of WorkspaceShardStrategy.select() at 100 endpoints (owner known / unplaced).
import { Strategies, type Context, type Endpoint } from "moleculer";
import { placeAll, type PlacementNode } from "../src/placement/hrw.ts";
import { PlacementMirror } from "../src/placement/mirror.ts";
import { attachMirror } from "../src/placement/kv.ts";
import { WorkspaceShardStrategy } from "../src/placement/strategy.ts";
import type { BenchArgs, BenchResult } from "./index.ts";

const WORKSPACES = 10000;
const SIZES = [4, 8, 16];
const C = 1.25;

type Assign = (workspaceIds: string[], nodeIds: string[]) => Map<string, string>;

const nodeIds = (n: number) => Array.from({ length: n }, (_, i) => `node-${i + 1}`);
// Numeric ids, as the old system's workspaces were.
const workspaceIds = Array.from({ length: WORKSPACES }, (_, i) => String(i + 1));

const ours: Assign = (ws, ids) =>
  placeAll(
    ws,
    ids.map((id): PlacementNode => ({ id })),
    C,
  );

const fakeBroker = () => ({ localBus: { on: () => undefined }, Promise });
const endpoints = (ids: string[]) => ids.map((id) => ({ id, isAvailable: true })) as unknown as Endpoint[];
const ctxFor = (workspaceId: string) => ({ params: { workspaceId }, meta: {} }) as unknown as Context;

const moleculerShard: Assign = (ws, ids) => {
  const Shard = Strategies.Shard as unknown as new (
    registry: unknown,
    broker: unknown,
    opts: unknown,
  ) => {
    select(list: Endpoint[], ctx: Context): Endpoint;
  };
  const strategy = new Shard({}, fakeBroker(), { shardKey: "workspaceId" });
  const list = endpoints(ids);
  return new Map(ws.map((w) => [w, strategy.select(list, ctxFor(w)).id]));
};

const modulo: Assign = (ws, ids) => new Map(ws.map((w) => [w, ids[Number(w) % ids.length]]));

function maxOverAvg(placement: Map<string, string>, n: number): number {
  const counts = new Map<string, number>();
  for (const node of placement.values()) counts.set(node, (counts.get(node) ?? 0) + 1);
  return Math.max(...counts.values()) / (placement.size / n);
}

function moved(a: Map<string, string>, b: Map<string, string>): number {
  let m = 0;
  for (const [w, n] of a) if (b.get(w) !== n) m++;
  return m / a.size;
}

const round = (x: number, d = 4) => Math.round(x * 10 ** d) / 10 ** d;

function measure(assign: Assign, n: number) {
  const ids = nodeIds(n);
  const base = assign(workspaceIds, ids);
  const joined = assign(workspaceIds, nodeIds(n + 1));
  const leaves = ids.map((leaver) =>
    moved(
      base,
      assign(
        workspaceIds,
        ids.filter((id) => id !== leaver),
      ),
    ),
  );
  return {
    maxOverAvg: round(maxOverAvg(base, n)),
    movedOnJoin: round(moved(base, joined)),
    movedOnLeave: round(leaves.reduce((s, x) => s + x, 0) / leaves.length),
    movedOnLeaveWorst: round(Math.max(...leaves)),
  };
}

function selectNsPerOp(placed: boolean): number {
  const ids = nodeIds(100);
  const broker = fakeBroker();
  const mirror = new PlacementMirror();
  attachMirror(broker, mirror);
  const contexts = workspaceIds.map(ctxFor);
  if (placed) {
    workspaceIds.forEach((w, i) =>
      mirror.apply(w, { workspaceId: w, node: ids[i % 100], epoch: 1, since: 0, revision: i + 1 }),
    );
  }
  const Strategy = WorkspaceShardStrategy as unknown as new (
    r: unknown,
    b: unknown,
    o: unknown,
  ) => WorkspaceShardStrategy;
  const strategy = new Strategy({}, broker, {});
  const list = endpoints(ids);
  let sink = 0;
  for (let i = 0; i < 20000; i++) sink += strategy.select(list, contexts[i % WORKSPACES]).id.length; // warm-up
  const ops = 200000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) sink += strategy.select(list, contexts[i % WORKSPACES]).id.length;
  const ns = Number(process.hrtime.bigint() - t0) / ops;
  if (sink < 0) console.log(sink);
  return Math.round(ns);
}

export async function run(_args?: BenchArgs): Promise<BenchResult> {
  const results: Record<string, Record<string, unknown>> = {};
  const bars: Record<string, boolean> = {};
  for (const n of SIZES) {
    const row = {
      ours: measure(ours, n),
      moleculerShard: measure(moleculerShard, n),
      modulo: measure(modulo, n),
    };
    results[`N=${n}`] = row;
    bars[`N=${n} maxOverAvg<=${C}`] = row.ours.maxOverAvg <= C;
    bars[`N=${n} movedOnJoin<=1.2/(N+1)`] = row.ours.movedOnJoin <= 1.2 / (n + 1);
    bars[`N=${n} movedOnLeave<=1.2/N`] = row.ours.movedOnLeave <= 1.2 / n;
  }
  const placedNs = selectNsPerOp(true);
  const unplacedNs = selectNsPerOp(false);
  const selectNs = Math.max(placedNs, unplacedNs);
  bars["selectNsPerOp<=2000"] = selectNs <= 2000;
  return {
    bench: "placement",
    workspaces: WORKSPACES,
    loadFactor: C,
    results,
    selectNsPerOp: selectNs,
    selectNsPerOpOwnerKnown: placedNs,
    selectNsPerOpUnplaced: unplacedNs,
    endpoints: 100,
    bars,
    pass: Object.values(bars).every(Boolean),
  };
}
