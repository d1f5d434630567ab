// Fencing in the accounts store, on the real MongoDB-wire server: a status write lands only for the
// fence that holds the account; a claim never moves an account to a lower epoch.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { MongoClient, type CommandStartedEvent } from "mongodb";
import type { AccountDoc } from "../../../src/accounts/types.ts";
import { initializingPatch } from "../../../src/session/status-run.ts";
import { AccountsRepo } from "../../../src/store/accounts-repo.ts";
import { ensureIndexes } from "../../../src/store/mongo.ts";
import { landThenLoseAnswer } from "../../support/answer-lost.ts";
import { mongoUrlFor } from "../../support/env.ts";

function account(id: string, workspaceId: string, extra: Partial<AccountDoc> = {}): AccountDoc {
  const now = new Date();
  return {
    _id: id,
    workspaceId,
    sessionId: `simulated_${workspaceId}_${Math.floor(now.getTime() / 1000)}_${randomBytes(4).toString("hex")}`,
    name: id,
    engine: "simulated",
    desiredState: "running",
    status: "initializing",
    createdAt: now,
    updatedAt: now,
    ...extra,
  };
}

describe("store/accounts-repo: fenced writes on the real server", () => {
  let client: MongoClient;
  let repo: AccountsRepo;

  before(async () => {
    client = await MongoClient.connect(mongoUrlFor(`repo${randomBytes(3).toString("hex")}`), {
      monitorCommands: true,
    });
    await ensureIndexes(client.db());
    repo = new AccountsRepo(client.db());
  });
  after(async () => client.close());

  it("rejects a second account with the same sessionId (unique index)", async () => {
    const a = account("acc_dup1", "w0");
    await repo.insert(a);
    await assert.rejects(repo.insert({ ...account("acc_dup2", "w0"), sessionId: a.sessionId }), {
      code: 11000,
    });
  });

  it("inserts made together are written together, each answered for itself (a duplicate fails alone)", async () => {
    await repo.insert(account("acc_batch_taken", "wb"));
    const inserts: number[] = [];
    const count = (e: CommandStartedEvent) => {
      if (e.commandName === "insert") inserts.push(e.command.documents.length);
    };
    client.on("commandStarted", count);
    const docs = Array.from({ length: 40 }, (_, i) => account(`acc_batch${i}`, "wb"));
    // At most the first goes out alone; the others wait for the write in flight and go out as one.
    const results = await Promise.allSettled([
      ...docs.map((d) => repo.insert(d)),
      repo.insert(account("acc_batch_taken", "wb")),
      repo.insert({ ...account("acc_batch_samesession", "wb"), sessionId: docs[7].sessionId }),
    ]);
    assert.deepEqual(
      results.slice(0, 40).map((r) => r.status),
      docs.map(() => "fulfilled"),
    );
    client.off("commandStarted", count);
    assert.equal(
      inserts.reduce((a, b) => a + b, 0),
      42,
    );
    assert.ok(inserts.length <= 2, `42 inserts went out in ${inserts.length} commands`);
    for (const r of results.slice(40)) {
      assert.equal(r.status, "rejected");
      assert.equal((r as PromiseRejectedResult).reason.code, 11000);
    }
    const stored = await repo.col.find({ workspaceId: "wb" }).toArray();
    assert.deepEqual(stored.map((d) => d._id).sort(), [...docs.map((d) => d._id), "acc_batch_taken"].sort());
  });

  it("status writes made together go out together, each answered for its own fence", async () => {
    const docs = Array.from({ length: 30 }, (_, i) => account(`acc_sw${i}`, "wsw", { node: "n1", epoch: 2 }));
    await Promise.all(docs.map((d) => repo.insert(d)));
    const updates: number[] = [];
    const count = (e: CommandStartedEvent) => {
      if (e.commandName === "update") updates.push(e.command.updates.length);
    };
    client.on("commandStarted", count);
    try {
      const write = (id: string, epoch: number, status: AccountDoc["status"] = "qr_scanning") =>
        repo.writeStatus(id, { node: "n1", epoch }, { status, updatedAt: new Date() });
      assert.deepEqual(
        await Promise.all(docs.map((d) => write(d._id, 2))),
        docs.map(() => true),
      );
      assert.ok(updates.length <= 3, `${updates.length} update commands for 30 writes: ${updates}`);
      // Three of them with a fence that does not hold: those three are refused, the others land.
      updates.length = 0;
      const stale = new Set([3, 11, 27]);
      const results = await Promise.all(docs.map((d, i) => write(d._id, stale.has(i) ? 1 : 2, "connected")));
      assert.deepEqual(
        results,
        docs.map((_, i) => !stale.has(i)),
      );
      const stored = await repo.byIds(docs.map((d) => d._id));
      assert.deepEqual(
        docs.map((d) => stored.find((s) => s._id === d._id)?.status),
        docs.map((_, i) => (stale.has(i) ? "qr_scanning" : "connected")),
      );
      assert.ok(updates.length >= 2, "written together, then each alone to learn which held");
    } finally {
      client.off("commandStarted", count);
    }
  });

  it("claims an unclaimed account (no epoch field at all), then only its own fence may write", async () => {
    await repo.insert(account("acc_1", "w1")); // no node/epoch fields
    const claimed = await repo.claim("acc_1", { node: "n1", epoch: 1 });
    assert.equal(claimed?.node, "n1");
    assert.equal(claimed?.epoch, 1);
    assert.deepEqual(
      await repo.claim("acc_1", { node: "n1", epoch: 1 }).then((d) => d?.node),
      "n1",
      "re-claim is idempotent",
    );
    assert.equal(
      await repo.claim("acc_1", { node: "n2", epoch: 1 }),
      null,
      "same epoch, other node: refused",
    );

    const ok = await repo.writeStatus(
      "acc_1",
      { node: "n1", epoch: 1 },
      { status: "qr_scanning", updatedAt: new Date() },
    );
    assert.equal(ok, true);
    const stale = await repo.writeStatus(
      "acc_1",
      { node: "n2", epoch: 1 },
      { status: "failed", updatedAt: new Date() },
    );
    assert.equal(stale, false);
    assert.equal((await repo.get("w1", "acc_1"))?.status, "qr_scanning");
  });

  it("a higher epoch takes over; the old owner's writes then change nothing", async () => {
    await repo.insert(account("acc_2", "w2", { node: "n1", epoch: 3, status: "connected" }));
    assert.equal(await repo.claim("acc_2", { node: "n2", epoch: 2 }), null, "lower epoch never wins");
    assert.equal((await repo.claim("acc_2", { node: "n2", epoch: 4 }))?.node, "n2");
    const stale = await repo.writeStatus(
      "acc_2",
      { node: "n1", epoch: 3 },
      { status: "stopped", updatedAt: new Date() },
    );
    assert.equal(stale, false);
    const d = await repo.get("w2", "acc_2");
    assert.equal(d?.status, "connected");
    assert.equal(d?.node, "n2");
  });

  it("claimOne says whether the account was ever owned (a first claim: no saved auth state possible)", async () => {
    await repo.insert(account("acc_n1", "w7"));
    const first = await repo.claimOne("acc_n1", { node: "n1", epoch: 1 });
    assert.equal(first?.neverOwned, true);
    assert.equal(first?.doc.node, "n1");
    assert.equal(first?.doc.epoch, 1);
    assert.equal((await repo.claimOne("acc_n1", { node: "n1", epoch: 1 }))?.neverOwned, false, "re-claim");
    assert.equal((await repo.claimOne("acc_n1", { node: "n2", epoch: 2 }))?.neverOwned, false, "takeover");
    assert.equal(await repo.claimOne("acc_n1", { node: "n1", epoch: 1 }), null, "lower epoch never wins");
  });

  it("an account a delete has begun on is never claimed, nor wanted running again", async () => {
    await repo.insert(account("acc_del", "w7d"));
    assert.equal(await repo.markDeleting("w7d", "acc_del", new Date()), true);
    assert.equal(await repo.claimOne("acc_del", { node: "n1", epoch: 5 }), null);
    assert.equal(await repo.setDesiredState("w7d", "acc_del", "running"), false);
    assert.equal(await repo.setDesiredState("w7d", "acc_del", "stopped"), true);
    assert.equal((await repo.get("w7d", "acc_del"))?.node ?? null, null, "not stamped");
  });

  it("a claim tried again after its write landed with its answer lost reports the status the caller read", async () => {
    await repo.insert(account("acc_lost", "w7l", { node: "n1", epoch: 5, status: "stopped" }));
    const restore = landThenLoseAnswer(repo.col, "findOneAndUpdate");
    try {
      const claimed = await repo.claimOne(
        "acc_lost",
        { node: "n1", epoch: 5 },
        initializingPatch(new Date()),
        "stopped",
      );
      assert.equal(claimed?.previous, "stopped", "not the initializing its first try wrote");
      assert.equal(claimed?.doc.status, "initializing");
    } finally {
      restore();
    }
  });

  it("an account wanted stopped (stopped or logged out since the caller read it) is not claimed", async () => {
    await repo.insert(account("acc_off", "w7s", { desiredState: "stopped", status: "logged_out" }));
    assert.equal(await repo.claimOne("acc_off", { node: "n1", epoch: 5 }), null);
    assert.equal((await repo.get("w7s", "acc_off"))?.node ?? null, null, "not stamped");
    assert.equal(await repo.setDesiredState("w7s", "acc_off", "running"), true);
    assert.equal((await repo.claimOne("acc_off", { node: "n1", epoch: 5 }))?.doc.node, "n1");
  });

  it("claimMany stamps the given accounts of the workspace that the fence may take, nothing else", async () => {
    await repo.insert(account("acc_m1", "w8"));
    await repo.insert(account("acc_m2", "w8", { node: "old", epoch: 1 }));
    await repo.insert(account("acc_m3", "w8", { node: "newer", epoch: 9 }));
    await repo.insert(account("acc_m4", "w8", { node: "old", epoch: 1 }));
    await repo.insert(account("acc_m5", "w9", { node: "old", epoch: 1 }));
    const ids = ["acc_m1", "acc_m2", "acc_m3", "acc_m5"];
    assert.equal(await repo.claimMany("w8", ids, { node: "n5", epoch: 5 }), 2);
    const docs = await repo.byIds([...ids, "acc_m4"]);
    const nodes = Object.fromEntries(docs.map((d) => [d._id, `${d.node}@${d.epoch}`]));
    assert.deepEqual(nodes, {
      acc_m1: "n5@5",
      acc_m2: "n5@5",
      acc_m3: "newer@9",
      acc_m4: "old@1",
      acc_m5: "old@1",
    });
    assert.equal(await repo.claimMany("w8", [], { node: "n5", epoch: 5 }), 0);
    // With a patch (a start writes `initializing`): what already carries the fence keeps its status.
    await repo.writeStatus(
      "acc_m1",
      { node: "n5", epoch: 5 },
      { status: "connected", updatedAt: new Date() },
    );
    await repo.insert(account("acc_m6", "w8", { node: "old", epoch: 1 }));
    const patch = { status: "initializing" as const, updatedAt: new Date() };
    assert.equal(await repo.claimMany("w8", ["acc_m1", "acc_m6"], { node: "n5", epoch: 5 }, patch), 1);
    const after = Object.fromEntries((await repo.byIds(["acc_m1", "acc_m6"])).map((d) => [d._id, d.status]));
    assert.deepEqual(after, { acc_m1: "connected", acc_m6: "initializing" });
    // Stopped since a restore read it: not claimed (the restore must not start it after the stop).
    await repo.insert(account("acc_m7", "w8", { node: "old", epoch: 1 }));
    await repo.setDesiredState("w8", "acc_m7", "stopped");
    assert.equal(await repo.claimMany("w8", ["acc_m7"], { node: "n5", epoch: 5 }, patch), 0);
    const [m7] = await repo.byIds(["acc_m7"]);
    assert.equal(`${m7.node}@${m7.epoch}`, "old@1");
  });

  it("get is scoped by workspace; desired state and delete too", async () => {
    await repo.insert(account("acc_s", "w5"));
    assert.equal(await repo.get("w6", "acc_s"), null);
    assert.equal(await repo.setDesiredState("w6", "acc_s", "stopped"), false);
    assert.equal(await repo.setDesiredState("w5", "acc_s", "stopped"), true);
    assert.deepEqual(await repo.desiredRunningIn(["w5"]), []);
    assert.equal(await repo.delete("w6", "acc_s"), "gone");
    assert.equal(await repo.delete("w5", "acc_s"), "deleted");
    assert.equal(await repo.get("w5", "acc_s"), null);
    assert.equal(await repo.delete("w5", "acc_s"), "gone");
  });

  it("a delete that landed before a transient error answers unsure, not gone", async () => {
    await repo.insert(account("acc_u", "w5"));
    const restore = landThenLoseAnswer(repo.col, "deleteOne");
    try {
      assert.equal(await repo.delete("w5", "acc_u"), "unsure");
    } finally {
      restore();
    }
    assert.equal(await repo.get("w5", "acc_u"), null);
  });
});
