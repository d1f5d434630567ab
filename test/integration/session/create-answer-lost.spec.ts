// A create whose worker records the account but never answers: the worker leaves with the call pending
// (a crash, a freeze past its heartbeats), or answers too late. The client gets the account (201) and
// the database holds it once, counted once — never an error that a retry turns into a duplicate.
import { strict as assert } from "node:assert";
import type { ServiceBroker, ServiceSchema } from "moleculer";
import { MongoClient } from "mongodb";
import AccountsService from "../../../services/accounts.service.ts";
import SessionService from "../../../services/session.service.ts";
import type { AccountDoc, AccountView } from "../../../src/accounts/types.ts";
import { TestCluster } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";

interface Gate {
  held: Promise<void>;
  release: () => void;
  recorded: boolean;
}

/** The session service, whose `create` records the account and then holds its answer until `release`. */
function answerHeld(gate: Gate): ServiceSchema {
  return {
    name: "session",
    mixins: [SessionService as unknown as ServiceSchema],
    hooks: {
      after: {
        async create(_ctx: unknown, res: unknown) {
          gate.recorded = true;
          await gate.held;
          return res;
        },
      },
    },
  };
}

describe("accounts.create: the worker's answer lost", function () {
  this.timeout(60000);
  const clusters: TestCluster[] = [];
  const clients: MongoClient[] = [];
  const gates: Gate[] = [];
  afterEach(async () => {
    for (const gate of gates.splice(0)) gate.release();
    await Promise.all(clusters.splice(0).map((c) => c.stop()));
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });

  async function setup(requestTimeoutMs: number) {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const gate: Gate = { held, release, recorded: false };
    gates.push(gate);
    const cluster = new TestCluster({ requestTimeoutMs }, "lostans");
    clusters.push(cluster);
    const gw = cluster.node("gw", [AccountsService]);
    const w1 = cluster.node("w1", [answerHeld(gate)]);
    await cluster.start();
    await gw.waitForServices(["accounts", "session"], 10000);
    const client = await MongoClient.connect(cluster.mongoUrl);
    clients.push(client);
    const accounts = () =>
      client.db().collection<AccountDoc>("accounts").find({ workspaceId: "wl" }).toArray();
    return { gw, w1, gate, accounts };
  }

  it("the worker leaves with the call pending after recording it: the client gets that account, once", async () => {
    const { gw, w1, gate, accounts } = await setup(30000);
    const creating = gw.call("accounts.create", {
      workspaceId: "wl",
      name: "lost answer",
    }) as Promise<AccountView>;
    await waitFor(() => gate.recorded, { what: "the worker to record the account" });
    // It leaves the cluster at once (as a crash's lost heartbeats do), its handler still running.
    await (w1 as ServiceBroker).transit!.disconnect();
    const view = await creating;
    // Its handler let go, it stops without waiting out the graceful-stop timeout.
    gate.release();
    await (w1 as ServiceBroker).transit!.connect();
    const docs = await accounts();
    assert.deepEqual(
      docs.map((d) => d._id),
      [view.id],
      "recorded once, and that is the account answered",
    );
  });

  it("the worker answers too late: the client still gets the account before its own timeout, once", async () => {
    const { gw, gate, accounts } = await setup(8000);
    const started = Date.now();
    const view = (await gw.call("accounts.create", {
      workspaceId: "wl",
      name: "late answer",
    })) as AccountView;
    assert.ok(Date.now() - started < 8000, "answered within the request timeout");
    assert.ok(gate.recorded);
    assert.deepEqual(
      (await accounts()).map((d) => d._id),
      [view.id],
    );
  });

  it("the worker's insert waits past the timeout, the fallback records the account first: it runs at once, not at the next sweep", async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    gates.push({ held, release, recorded: false });
    let insertWaiting = false;
    let startArrived = false;
    // The owner's insert waits (a stalled database) until the fallback's start has arrived.
    const slowInsert: ServiceSchema = {
      name: "session",
      mixins: [SessionService as unknown as ServiceSchema],
      hooks: { before: { start: () => void (startArrived = true) } },
      async started() {
        const repo = (this as unknown as { repo: { insert: (doc: AccountDoc) => Promise<void> } }).repo;
        const real = repo.insert.bind(repo);
        repo.insert = async (doc) => {
          insertWaiting = true;
          await held;
          return real(doc);
        };
      },
    };
    // No periodic pass within the test: only a pass asked for can start the account.
    const cluster = new TestCluster({ requestTimeoutMs: 6500, reconcileMs: 60_000 }, "lostins");
    clusters.push(cluster);
    const gw = cluster.node("gw", [AccountsService]);
    cluster.node("w1", [slowInsert]);
    await cluster.start();
    await gw.waitForServices(["accounts", "session"], 10000);
    const client = await MongoClient.connect(cluster.mongoUrl);
    clients.push(client);
    const stored = (id: string) => client.db().collection<AccountDoc>("accounts").findOne({ _id: id });

    const creating = gw.call("accounts.create", {
      workspaceId: "wi",
      name: "fallback first",
    }) as Promise<AccountView>;
    await waitFor(() => insertWaiting, { what: "the owner's insert to wait" });
    // The gateway's call times out; its fallback records the account (unplaced) and asks the owner to
    // start it, which waits on the create under way there.
    await waitFor(() => startArrived, { what: "the fallback's start at the owner" });
    const recorded = await client.db().collection<AccountDoc>("accounts").findOne({ workspaceId: "wi" });
    assert.ok(recorded && recorded.node === null, "recorded by the fallback, unplaced");
    release();
    const view = await creating;
    assert.equal(view.id, recorded._id);
    const running = await waitFor(
      async () => {
        const doc = await stored(view.id);
        return doc?.node === "w1" && doc.status === "qr_scanning" ? doc : null;
      },
      { what: "the account started on w1", timeoutMs: 5000 },
    );
    assert.equal(running.sessionId, view.sessionId);
  });
});
