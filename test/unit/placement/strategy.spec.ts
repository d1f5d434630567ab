// WorkspaceShard: owner from the broker's mirror; when unplaced, the bounded-load HRW choice (plain HRW
// among offered endpoints before live nodes are known); never a random node; no key → validation error.
import { strict as assert } from "node:assert";
import type { Context, Endpoint } from "moleculer";
import { chooseOwner, rankNodes } from "../../../src/placement/hrw.ts";
import { PlacementMirror } from "../../../src/placement/mirror.ts";
import { attachMirror } from "../../../src/placement/kv.ts";
import { WorkspaceShardStrategy, workspaceIdOf } from "../../../src/placement/strategy.ts";
import type { NodeRecord } from "../../../src/placement/liveness.ts";

const ids = ["w1", "w2", "w3", "w4"];
const endpoints = (list: string[]) => list.map((id) => ({ id, isAvailable: true })) as unknown as Endpoint[];
const ctx = (params: object, meta: object = {}) => ({ params, meta }) as unknown as Context;
const node = (nodeId: string, draining = false): NodeRecord => ({
  nodeId,
  pid: 1,
  host: "h",
  services: ["session"],
  capacity: 50,
  sessions: 0,
  draining,
  renewedAt: 0,
});

function strategyWith(mirror?: PlacementMirror) {
  const broker = {};
  if (mirror) attachMirror(broker, mirror);
  const Strategy = WorkspaceShardStrategy as unknown as new (
    r: unknown,
    b: unknown,
    o: unknown,
  ) => WorkspaceShardStrategy;
  return new Strategy({}, broker, {});
}

describe("placement/strategy: WorkspaceShard", () => {
  it("reads the key from params, then meta, as a string", () => {
    assert.equal(workspaceIdOf(ctx({ workspaceId: 42 })), "42");
    assert.equal(workspaceIdOf(ctx({}, { workspaceId: "m" })), "m");
    assert.equal(workspaceIdOf(ctx({ workspaceId: "p" }, { workspaceId: "m" })), "p");
    assert.equal(workspaceIdOf(ctx({ workspaceId: "" })), undefined);
  });

  it("refuses a call without a workspace: a validation error, never a random node", () => {
    const s = strategyWith(new PlacementMirror());
    assert.throws(
      () => s.select(endpoints(ids), ctx({})),
      (err: any) => err.type === "VALIDATION_ERROR",
    );
    assert.throws(
      () => s.select(endpoints(ids), undefined),
      (err: any) => err.code === 422,
    );
  });

  it("sends a placed workspace to its recorded owner", () => {
    const mirror = new PlacementMirror();
    mirror.apply("ws-a", { workspaceId: "ws-a", node: "w3", epoch: 4, since: 0, revision: 9 });
    const s = strategyWith(mirror);
    for (let i = 0; i < 20; i++)
      assert.equal(s.select(endpoints(ids), ctx({ workspaceId: "ws-a" })).id, "w3");
    assert.equal(s.select(endpoints(ids), ctx({}, { workspaceId: "ws-a" })).id, "w3");
    // The record moves: so does the routing, at once (no cache to go stale).
    mirror.apply("ws-a", { workspaceId: "ws-a", node: "w1", epoch: 5, since: 0, revision: 10 });
    assert.equal(s.select(endpoints(ids), ctx({ workspaceId: "ws-a" })).id, "w1");
  });

  it("sends an unplaced workspace (or one whose owner offers no endpoint) to its HRW choice", () => {
    const mirror = new PlacementMirror();
    mirror.apply("gone", { workspaceId: "gone", node: "w9", epoch: 1, since: 0, revision: 1 });
    const s = strategyWith(mirror);
    for (const ws of ["x1", "x2", "x3", "gone"]) {
      assert.equal(
        s.select(endpoints(ids), ctx({ workspaceId: ws })).id,
        rankNodes(
          ws,
          ids.map((id) => ({ id })),
        )[0],
      );
    }
    // The same answer on any broker, with or without a mirror.
    assert.equal(
      strategyWith().select(endpoints(ids), ctx({ workspaceId: "x1" })).id,
      s.select(endpoints(ids), ctx({ workspaceId: "x1" })).id,
    );
  });

  it("skips draining nodes for unplaced workspaces", () => {
    const mirror = new PlacementMirror();
    const ws = "drain-me";
    const top = rankNodes(
      ws,
      ids.map((id) => ({ id })),
    )[0];
    mirror.setLiveNodes(new Map(ids.map((id) => [id, node(id, id === top)])));
    const chosen = strategyWith(mirror).select(endpoints(ids), ctx({ workspaceId: ws })).id;
    assert.notEqual(chosen, top);
    assert.equal(
      chosen,
      rankNodes(
        ws,
        ids.filter((id) => id !== top).map((id) => ({ id })),
      )[0],
    );
  });

  it("sends an unplaced workspace to its bounded-load choice: past a node at its load bound", () => {
    const mirror = new PlacementMirror();
    mirror.setLiveNodes(new Map(ids.map((id) => [id, node(id)])));
    const ws = "crowded";
    const [top, second] = rankNodes(ws, mirror.workers());
    // Eight workspaces on the top choice, none elsewhere: the bound is ceil(1.25 × 9 / 4) = 3.
    for (let i = 0; i < 8; i++)
      mirror.apply(`other${i}`, { workspaceId: `other${i}`, node: top, epoch: 1, since: 0, revision: i + 1 });
    const s = strategyWith(mirror);
    assert.equal(s.select(endpoints(ids), ctx({ workspaceId: ws })).id, second);
    assert.equal(chooseOwner(ws, mirror.workers(), mirror.loads()), second);
    // A candidate that offers no endpoint is not chosen.
    const offered = ids.filter((id) => id !== second);
    assert.equal(
      s.select(endpoints(offered), ctx({ workspaceId: ws })).id,
      chooseOwner(
        ws,
        mirror.workers().filter((n) => n.id !== second),
        mirror.loads(),
      ),
    );
  });

  it("a worker at its SESSION_CAPACITY takes no new workspace while another has room", () => {
    const mirror = new PlacementMirror();
    const full = (id: string) => ({ ...node(id), capacity: 2, sessions: 2 });
    mirror.setLiveNodes(
      new Map([
        ["w1", full("w1")],
        ["w2", node("w2")],
        ["w3", full("w3")],
      ]),
    );
    assert.deepEqual(
      mirror.workers().map((n) => n.id),
      ["w2"],
    );
    for (let i = 0; i < 20; i++) assert.equal(chooseOwner(`ws${i}`, mirror.workers(), mirror.loads()), "w2");
    // Every worker full: all stay candidates (the owner then fails what it cannot run).
    mirror.setLiveNodes(
      new Map([
        ["w1", full("w1")],
        ["w3", full("w3")],
      ]),
    );
    assert.deepEqual(
      mirror
        .workers()
        .map((n) => n.id)
        .sort(),
      ["w1", "w3"],
    );
  });

  it("follows changes of the offered endpoints", () => {
    const s = strategyWith(new PlacementMirror());
    const ws = "moving";
    const first = s.select(endpoints(ids), ctx({ workspaceId: ws })).id;
    const fewer = ids.filter((id) => id !== first);
    assert.equal(
      s.select(endpoints(fewer), ctx({ workspaceId: ws })).id,
      rankNodes(
        ws,
        fewer.map((id) => ({ id })),
      )[0],
    );
  });

  it("a burst of new workspaces spreads by the choices made so far, before their records show", () => {
    const mirror = new PlacementMirror();
    const three = ["w1", "w2", "w3"];
    mirror.setLiveNodes(new Map(three.map((id) => [id, node(id)])));
    // Recorded before the burst: w1 27, w2 7, w3 16 (the loads every call of the burst reads).
    let rev = 0;
    for (const [id, n] of [
      ["w1", 27],
      ["w2", 7],
      ["w3", 16],
    ] as const)
      for (let i = 0; i < n; i++)
        mirror.apply(`${id}-old${i}`, {
          workspaceId: `${id}-old${i}`,
          node: id,
          epoch: 1,
          since: 0,
          revision: ++rev,
        });
    const s = strategyWith(mirror);
    const burst = new Map<string, number>();
    for (let i = 0; i < 60; i++) {
      const id = s.select(endpoints(three), ctx({ workspaceId: `new${i}` })).id;
      burst.set(id, (burst.get(id) ?? 0) + 1);
    }
    // 110 in all: none ends past the bound of ceil(1.25 × 110 / 3) = 46, where reading the same loads
    // every time sent most of the burst to one node (w3 + 37).
    for (const [id, n] of [
      ["w1", 27],
      ["w2", 7],
      ["w3", 16],
    ] as const)
      assert.ok(n + (burst.get(id) ?? 0) <= 46, `${id}: ${n} + ${burst.get(id)}`);

    // A choice stops counting once its record shows (not twice), and asking again for the same
    // workspace does not count it against itself.
    const again = s.select(endpoints(three), ctx({ workspaceId: "new0" })).id;
    mirror.apply("new0", { workspaceId: "new0", node: again, epoch: 1, since: 0, revision: rev + 1 });
    assert.equal(s.select(endpoints(three), ctx({ workspaceId: "new0" })).id, again);
  });
});
