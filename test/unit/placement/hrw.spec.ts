// The placement math: deterministic across processes, balanced, minimal movement on join and leave.
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  chooseOwner,
  hash64,
  HrwIndex,
  nextOwner,
  placeAll,
  rankNodes,
  type PlacementNode,
} from "../../../src/placement/hrw.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const nodes = (n: number, prefix = "node-"): PlacementNode[] =>
  Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i + 1}` }));
const workspaces = (n: number): string[] => Array.from({ length: n }, (_, i) => `ws-${i}`);

function counts(placement: Map<string, string>): Map<string, number> {
  const c = new Map<string, number>();
  for (const node of placement.values()) c.set(node, (c.get(node) ?? 0) + 1);
  return c;
}

describe("placement/hrw", () => {
  it("gives the same answers in another process", async function () {
    this.timeout(30000);
    const ids = workspaces(500);
    const ns = nodes(7);
    const here =
      ids.map((w) => rankNodes(w, ns).join(",")).join(";") + "|" + JSON.stringify(hash64("héllo✓"));
    const script = `
      import { rankNodes, hash64 } from ${JSON.stringify(join(ROOT, "src/placement/hrw.ts"))};
      const ns = Array.from({ length: 7 }, (_, i) => ({ id: "node-" + (i + 1) }));
      const ids = Array.from({ length: 500 }, (_, i) => "ws-" + i);
      process.stdout.write(ids.map((w) => rankNodes(w, ns).join(",")).join(";") + "|" + JSON.stringify(hash64("héllo✓")));
    `;
    const { stdout } = await promisify(execFile)(join(ROOT, "node_modules/.bin/tsx"), ["--eval", script], {
      cwd: ROOT,
      maxBuffer: 16 * 1024 * 1024,
    });
    assert.equal(stdout, here);
  });

  it("treats numeric and string workspace ids alike", () => {
    assert.deepEqual(rankNodes(42, nodes(5)), rankNodes("42", nodes(5)));
  });

  it("balances 10,000 workspaces over 4, 8 and 16 nodes within c = 1.25", () => {
    for (const n of [4, 8, 16]) {
      const placement = placeAll(workspaces(10000), nodes(n));
      const avg = 10000 / n;
      const max = Math.max(...counts(placement).values());
      assert.ok(max / avg <= 1.25, `N=${n}: max/avg ${max / avg}`);
      assert.equal(counts(placement).size, n, "every node got workspaces");
    }
  });

  it("pure rendezvous (no bound) is already close to even", () => {
    const ns = nodes(8);
    const c = new Map<string, number>();
    for (const w of workspaces(10000)) {
      const top = rankNodes(w, ns)[0];
      c.set(top, (c.get(top) ?? 0) + 1);
    }
    for (const v of c.values()) assert.ok(Math.abs(v - 1250) < 150, `load ${v} far from 1250`);
  });

  it("respects weights: a node of weight 2 gets about twice the share", () => {
    const ns: PlacementNode[] = [{ id: "big", weight: 2 }, { id: "a" }, { id: "b" }];
    const c = new Map<string, number>();
    for (const w of workspaces(8000)) {
      const top = rankNodes(w, ns)[0];
      c.set(top, (c.get(top) ?? 0) + 1);
    }
    assert.ok(Math.abs(c.get("big")! - 4000) < 200, `big got ${c.get("big")}`);
    assert.equal(rankNodes("x", [{ id: "zero", weight: 0 }, { id: "one" }])[0], "one");
  });

  it("bounded load skips a node at ceil(c × average)", () => {
    const ns = nodes(4);
    const ws = "ws-bounded";
    const first = rankNodes(ws, ns)[0];
    // Total after placing = 101, average 25.25, bound ceil(1.25 × 25.25) = 32.
    const loads = new Map(ns.map((n) => [n.id, n.id === first ? 32 : 23] as [string, number]));
    assert.equal(chooseOwner(ws, ns, loads), rankNodes(ws, ns)[1]);
    loads.set(first, 31);
    assert.equal(chooseOwner(ws, ns, loads), first);
    assert.equal(chooseOwner(ws, ns, loads, 1.0), rankNodes(ws, ns)[1], "c is configurable");
  });

  it("a join moves no live workspace, and a fresh placement only moves workspaces to the joiner", () => {
    const before = placeAll(workspaces(10000), nodes(8));
    const grown = nodes(9);
    const sticky = placeAll(workspaces(10000), grown, 1.25, before);
    for (const [w, n] of before) assert.equal(sticky.get(w), n, `${w} moved on join`);
    let moved = 0;
    for (const w of workspaces(10000)) {
      const was = rankNodes(w, nodes(8))[0];
      const now = rankNodes(w, grown)[0];
      if (was !== now) {
        moved++;
        assert.equal(now, "node-9", `${w} moved between old nodes`);
      }
    }
    assert.ok(moved / 10000 <= 1.2 / 9, `moved ${moved}`);
  });

  it("a leave moves only the leaver's workspaces, spread over the survivors", () => {
    const before = placeAll(workspaces(10000), nodes(8));
    const survivors = nodes(8).filter((n) => n.id !== "node-3");
    const after = placeAll(workspaces(10000), survivors, 1.25, before);
    const receivers = new Map<string, number>();
    for (const [w, n] of before) {
      if (n !== "node-3") assert.equal(after.get(w), n, `${w} moved although its node stayed`);
      else receivers.set(after.get(w)!, (receivers.get(after.get(w)!) ?? 0) + 1);
    }
    assert.equal(receivers.size, 7, "the leaver's workspaces are spread over every survivor");
    for (const v of receivers.values()) assert.ok(v < (1250 / 7) * 1.5, `a survivor got ${v}`);
  });

  it("the next owner is the runner-up, never the current owner", () => {
    const ns = nodes(5);
    for (const w of workspaces(200)) {
      const ranking = rankNodes(w, ns);
      assert.equal(nextOwner(w, ranking[0], ns), ranking[1]);
    }
    assert.equal(nextOwner("w", "only", [{ id: "only" }]), undefined);
    assert.equal(chooseOwner("w", []), undefined);
  });

  it("HrwIndex agrees with rankNodes and chooseOwner", () => {
    const ns: PlacementNode[] = [...nodes(6), { id: "heavy", weight: 3 }];
    const index = new HrwIndex(ns);
    const loads = new Map([["node-2", 900]]);
    for (const w of workspaces(2000)) {
      assert.equal(index.top(w), rankNodes(w, ns)[0]);
      assert.equal(index.choose(w, loads), chooseOwner(w, ns, loads));
    }
    const uniform = new HrwIndex(nodes(10));
    for (const w of workspaces(2000)) assert.equal(uniform.top(w), rankNodes(w, nodes(10))[0]);
  });
});
