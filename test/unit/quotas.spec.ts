import { strict as assert } from "node:assert";
import { AccountTally, CREATE_SETTLES_MS, probeLast, QuotaTally, type TallyStore } from "../../src/quotas.ts";

/** Versions in a Map, a unique key per version as the `_id` is; each call yields, so callers interleave. */
class MemoryTallies implements TallyStore {
  readonly versions = new Map<string, number>();
  /** When each version was written and its change. */
  readonly made = new Map<string, { at: number; d: number; ref?: string }>();
  reads = 0;
  writes = 0;

  async read(workspaceId: string, seq: number): Promise<number | null> {
    this.reads++;
    await new Promise((r) => setImmediate(r));
    return this.versions.get(`${workspaceId}|${seq}`) ?? null;
  }

  async write(workspaceId: string, seq: number, n: number, d: number, ref?: string): Promise<boolean> {
    this.writes++;
    await new Promise((r) => setImmediate(r));
    const key = `${workspaceId}|${seq}`;
    if (this.versions.has(key)) return false;
    this.versions.set(key, n);
    this.made.set(key, { at: Date.now(), d, ref });
    return true;
  }

  async changesOfSince(workspaceId: string, ref: string, since: Date): Promise<number> {
    return [...this.made]
      .filter(([k, m]) => k.startsWith(`${workspaceId}|`) && m.ref === ref && m.at >= +since)
      .reduce((sum, [, m]) => sum + m.d, 0);
  }

  async createsSince(workspaceId: string, since: Date): Promise<number> {
    return [...this.made].filter(([k, m]) => k.startsWith(`${workspaceId}|`) && m.d === 1 && m.at >= +since)
      .length;
  }

  /** Every version written so far as if `ms` ago. */
  age(ms: number): void {
    for (const m of this.made.values()) m.at -= ms;
  }

  last(workspaceId: string): number {
    let seq = 0;
    while (this.versions.has(`${workspaceId}|${seq + 1}`)) seq++;
    return seq === 0 ? 0 : this.versions.get(`${workspaceId}|${seq}`)!;
  }
}

const noCount = async (): Promise<number> => {
  throw new Error("counted the accounts below the limit");
};

async function outcomes(ops: Promise<unknown>[]): Promise<{ ok: number; refused: number }> {
  const settled = await Promise.allSettled(ops);
  for (const s of settled) {
    if (s.status === "rejected") assert.equal((s.reason as { type?: string }).type, "QUOTA_EXCEEDED");
  }
  return {
    ok: settled.filter((s) => s.status === "fulfilled").length,
    refused: settled.filter((s) => s.status === "rejected").length,
  };
}

describe("quotas: AccountTally", () => {
  it("a new workspace's first create costs one write and no read", async () => {
    const store = new MemoryTallies();
    const tally = new AccountTally(store, noCount);
    await tally.reserve("ws", 5);
    assert.deepEqual([store.reads, store.writes], [0, 1]);
    assert.equal(store.last("ws"), 1);
  });

  it("a workspace's first account reads no quota; the next one waits for its quota", async () => {
    const store = new MemoryTallies();
    const tally = new AccountTally(store, async () => store.last("ws"));
    let readLimit!: (n: number) => void;
    const read = new Promise<number>((resolve) => (readLimit = resolve));
    let reads = 0;
    const limit = () => {
      reads++;
      return read;
    };
    await tally.reserve("ws", limit);
    assert.equal(reads, 0);
    let second: string | undefined;
    const pending = tally.reserve("ws", limit).then(
      () => (second = "admitted"),
      (err: { type: string }) => (second = err.type),
    );
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(second, undefined);
    assert.equal(reads, 1);
    readLimit(1);
    await pending;
    assert.equal(second, "QUOTA_EXCEEDED");
    assert.equal(store.last("ws"), 1);
  });

  it("tells a create whether it is the workspace's first account ever", async () => {
    const store = new MemoryTallies();
    const [a, b] = [0, 1].map(() => new AccountTally(store, noCount));
    assert.equal(await a.reserve("ws", 0), true);
    assert.equal(await b.reserve("ws", 0), false);
    await a.removed("ws");
    await b.removed("ws");
    // None left, but it had accounts (their events are in its log).
    assert.equal(await a.reserve("ws", 0), false);
    assert.deepEqual(await Promise.all([a.reserve("w2", 0), b.reserve("w2", 0)]).then((r) => r.sort()), [
      false,
      true,
    ]);
  });

  it("creates racing through several nodes stop exactly at the quota", async () => {
    const store = new MemoryTallies();
    const nodes = [0, 1, 2].map(() => new AccountTally(store, async () => store.last("ws")));
    const { ok, refused } = await outcomes(
      Array.from({ length: 30 }, (_, i) => nodes[i % 3].reserve("ws", 10)),
    );
    assert.deepEqual({ ok, refused }, { ok: 10, refused: 20 });
    assert.equal(store.last("ws"), 10);
  });

  it("deletes count out, on any node, so creates are admitted again up to the quota", async () => {
    const store = new MemoryTallies();
    const [a, b] = [0, 1].map(() => new AccountTally(store, async () => store.last("ws")));
    for (let i = 0; i < 3; i++) await a.reserve("ws", 3);
    await assert.rejects(b.reserve("ws", 3), { type: "QUOTA_EXCEEDED" });
    await Promise.all([b.removed("ws"), a.removed("ws")]);
    assert.equal(store.last("ws"), 1);
    const { ok } = await outcomes(Array.from({ length: 4 }, (_, i) => [a, b][i % 2].reserve("ws", 3)));
    assert.equal(ok, 2);
    assert.equal(store.last("ws"), 3);
  });

  it("a release counts a create out again; workspaces count apart; 0 is unlimited", async () => {
    const store = new MemoryTallies();
    const tally = new AccountTally(store, noCount);
    await tally.reserve("ws", 1);
    await tally.release("ws");
    await tally.reserve("ws", 1);
    await tally.reserve("other", 1);
    for (let i = 0; i < 5; i++) await tally.reserve("free", 0);
    assert.deepEqual([store.last("ws"), store.last("other"), store.last("free")], [1, 1, 5]);
  });

  it("at the limit a tally left high (a create that died) is corrected once its creates are settled", async () => {
    const store = new MemoryTallies();
    let accounts = 1;
    const tally = new AccountTally(store, async () => accounts);
    await tally.reserve("ws", 2);
    await tally.reserve("ws", 2);
    // Only one of the two was recorded, but the other may still be on its way: refused.
    await assert.rejects(tally.reserve("ws", 2), { type: "QUOTA_EXCEEDED" });
    // Long enough for any create to have recorded its account: counted again (after CACHE_MS).
    store.age(CREATE_SETTLES_MS + 1);
    const later = new AccountTally(store, async () => accounts);
    await later.reserve("ws", 2);
    assert.equal(store.last("ws"), 2);
    accounts = 2;
    await assert.rejects(later.reserve("ws", 2), {
      type: "QUOTA_EXCEEDED",
      data: { workspaceId: "ws", quota: "accounts", limit: 2 },
    });
  });

  it("a create reserved under a ref, on any node, may be recording it until it is released or settled", async () => {
    const store = new MemoryTallies();
    const [a, b] = [new AccountTally(store, async () => 0), new AccountTally(store, async () => 0)];
    assert.equal(await b.mayBeRecording("ws", "acc_k"), false);
    await a.reserve("ws", 1, "acc_k");
    // Another node, refused the last place, can tell the place is acc_k's.
    await assert.rejects(b.reserve("ws", 1, "acc_k"), { type: "QUOTA_EXCEEDED" });
    assert.equal(await b.mayBeRecording("ws", "acc_k"), true);
    assert.equal(await b.mayBeRecording("ws", "acc_other"), false);
    assert.equal(await b.mayBeRecording("other", "acc_k"), false);
    // A repeat that took a place of its own (below the quota) and gave it back: still the first's.
    const roomy = new MemoryTallies();
    const [c, d] = [new AccountTally(roomy, async () => 0), new AccountTally(roomy, async () => 0)];
    await c.reserve("ws", 5, "acc_k");
    await d.reserve("ws", 5, "acc_k");
    await d.release("ws", "acc_k");
    assert.equal(await d.mayBeRecording("ws", "acc_k"), true);
    // Released (not recorded): no longer.
    await a.release("ws", "acc_k");
    assert.equal(await b.mayBeRecording("ws", "acc_k"), false);
    // Reserved again, then long enough ago for any create to have settled: no longer either.
    await a.reserve("ws", 1, "acc_k");
    assert.equal(await b.mayBeRecording("ws", "acc_k"), true);
    store.age(CREATE_SETTLES_MS + 1);
    assert.equal(await b.mayBeRecording("ws", "acc_k"), false);
  });

  it("a tally kept for another quota (webhook endpoints) names that quota when it refuses", async () => {
    const store = new MemoryTallies();
    const tally = new QuotaTally(store, async () => store.last("ws"), "webhooks");
    await tally.reserve("ws", 1);
    await assert.rejects(tally.reserve("ws", 1), {
      type: "QUOTA_EXCEEDED",
      data: { workspaceId: "ws", quota: "webhooks", limit: 1 },
    });
  });

  it("a lowered limit refuses creates while the accounts are at or above it", async () => {
    const store = new MemoryTallies();
    const tally = new AccountTally(store, async () => store.last("ws"));
    for (let i = 0; i < 4; i++) await tally.reserve("ws", 0);
    await assert.rejects(tally.reserve("ws", 3), { type: "QUOTA_EXCEEDED" });
    assert.equal(store.last("ws"), 4);
  });
});

describe("quotas: probeLast", () => {
  it("finds the last version from any known one, by single lookups", async () => {
    for (const last of [0, 1, 2, 3, 7, 8, 100, 1023]) {
      const store = new MemoryTallies();
      for (let seq = 1; seq <= last; seq++) store.versions.set(`ws|${seq}`, seq * 10);
      for (const from of [0, Math.min(1, last), Math.floor(last / 2), last]) {
        store.reads = 0;
        assert.deepEqual(await probeLast(store, "ws", from), { seq: last, n: last * 10 }, `${last} ${from}`);
        assert.ok(store.reads <= 2 * Math.log2(last + 2) + 2, `${store.reads} reads for ${last}`);
      }
    }
  });
});
