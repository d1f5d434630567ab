// Events that are not logged (QR codes) while a recorder slot changes hands, with the slot leases, the
// event log and the outbox in the real MongoDB-wire server: two webhooks nodes' recorders (the parts of
// services/webhooks.service.ts that record), ticked by hand. Such an event cannot be read back later,
// so a slot that no node holds for a moment must not drop it; both nodes hear it and the outbox keeps
// one row.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { MongoClient, type Db } from "mongodb";
import { EventCursorsRepo } from "../../../src/store/event-cursors-repo.ts";
import { EventsRepo } from "../../../src/store/events-repo.ts";
import { isDuplicateKey } from "../../../src/store/mongo.ts";
import { EndpointsRepo } from "../../../src/store/webhook-endpoints-repo.ts";
import { LeaseRepo, RECORDERS_COLLECTION } from "../../../src/store/webhook-leases-repo.ts";
import { OUTBOX_COLLECTION, OutboxRepo } from "../../../src/store/webhook-outbox-repo.ts";
import { EventRecorder } from "../../../src/webhooks/event-recorder.ts";
import { eventIdOf } from "../../../src/webhooks/events.ts";
import { LogTail } from "../../../src/webhooks/log-tail.ts";
import { RecorderSlots, slotOf } from "../../../src/webhooks/recorder-slots.ts";
import { mongoUrlFor } from "../../support/env.ts";

const SLOTS = 8;
const quiet = { debug() {}, info() {}, warn() {}, error() {} } as any;

interface Node {
  slots: RecorderSlots;
  recorder: EventRecorder;
  tail: LogTail;
  /** Events this node tried to put in the outbox. */
  recordings: number;
}

describe("webhooks: events not logged while a recorder slot changes hands", function () {
  this.timeout(30000);
  let client: MongoClient;
  let db: Db;
  let running: Node[];
  /** The webhooks nodes each node sees. */
  let seen: number;

  before(async () => {
    client = await MongoClient.connect(mongoUrlFor(`whhandover${randomBytes(3).toString("hex")}`));
    db = client.db();
    await new OutboxRepo(db, "setup").ensureIndexes();
    await new EndpointsRepo(db).ensureIndexes();
  });
  after(async () => client.close());
  beforeEach(async () => {
    running = [];
    seen = 1;
    await db.collection(RECORDERS_COLLECTION).deleteMany({});
  });
  afterEach(async () => {
    for (const n of running) {
      await n.tail.stop();
      await n.slots.stop();
    }
  });

  /** A node's recording parts; its slots tick only when a test says so. */
  async function startNode(name: string): Promise<Node> {
    const leases = new LeaseRepo(db, name, 30_000, RECORDERS_COLLECTION);
    await leases.ensureIndexes();
    const outbox = new OutboxRepo(db, name);
    const node = { recordings: 0 } as Node;
    node.recorder = new EventRecorder({
      endpoints: new EndpointsRepo(db),
      outbox: {
        record: (ev, endpoints) => (node.recordings++, outbox.record(ev, endpoints)),
        recordMany: (items) => outbox.recordMany(items),
      },
      loop: { holds: () => false, notify() {} },
      tell() {},
      logger: quiet,
      endpointCacheMs: 0,
    });
    node.slots = new RecorderSlots(
      leases,
      { leaseTtlMs: 30_000, tickMs: 600_000, slots: SLOTS },
      () => seen,
      () => node.tail.adopt(),
      quiet,
    );
    node.tail = new LogTail(
      new EventsRepo(db),
      new EventCursorsRepo(db, "webhooks"),
      (docs) => node.recorder.recordLogged(docs),
      { pollMs: 600_000, records: (ws) => node.slots.holds(ws) },
      quiet,
    );
    node.recorder.attach(node.tail, node.slots);
    await node.slots.start();
    running.push(node);
    return node;
  }

  const tick = (node: Node): Promise<void> => (node.slots as any).tickNow();

  /** A new workspace that passes `test` (its slot), with an endpoint. */
  async function workspaceWhere(test: (ws: string) => boolean): Promise<string> {
    const prefix = `ws_${randomBytes(3).toString("hex")}_`;
    let i = 0;
    while (!test(`${prefix}${i}`)) i++;
    const ws = `${prefix}${i}`;
    await new EndpointsRepo(db).create({
      workspaceId: ws,
      url: "https://example.org/h",
      secret: "x".repeat(16),
    });
    return ws;
  }

  /** A QR code of the workspace, broadcast: every node hears it. */
  async function broadcastQr(ws: string, nodes: Node[]): Promise<string> {
    const payload = { workspaceId: ws, accountId: "acc_qr", qr: `2@${randomBytes(6).toString("hex")}` };
    await Promise.all(nodes.map((n) => n.recorder.onAccountEvent("account.qr", payload)));
    return eventIdOf("account.qr", payload);
  }

  const rowsOf = (eventId: string) => db.collection(OUTBOX_COLLECTION).countDocuments({ eventId });

  it("a slot released by a node whose share shrank, not claimed yet: the QR is recorded once", async () => {
    const first = await startNode("first");
    assert.equal(first.slots.heldSlots().length, SLOTS);
    seen = 2;
    const second = await startNode("second");
    assert.deepEqual(second.slots.heldSlots(), [], "every slot still held by the first");
    // The first sees two nodes and lets half its slots go; the second claims them at its next tick.
    await tick(first);
    assert.equal(first.slots.heldSlots().length, SLOTS / 2);
    const ws = await workspaceWhere((w) => !first.slots.heldSlots().includes(slotOf(w, SLOTS)));
    assert.ok(!first.slots.holds(ws) && !second.slots.holds(ws), "no node holds its slot");

    const id = await broadcastQr(ws, [first, second]);
    assert.equal(await rowsOf(id), 1, "recorded once");

    // Once the second holds it, it alone records.
    await tick(second);
    assert.ok(second.slots.holds(ws));
    const next = await broadcastQr(ws, [first, second]);
    assert.equal(await rowsOf(next), 1);
    assert.equal(first.recordings, 1, "the first recorded only while nobody held the slot");
  });

  it("a stopped node's slots, before the other's next tick: the QR is recorded", async () => {
    seen = 2;
    const first = await startNode("first");
    const second = await startNode("second");
    const ws = await workspaceWhere((w) => first.slots.heldSlots().includes(slotOf(w, SLOTS)));
    await first.tail.stop();
    await first.slots.stop();
    seen = 1;
    const id = await broadcastQr(ws, [second]);
    assert.equal(await rowsOf(id), 1);
  });

  it("the outbox refuses a second row of one event for one endpoint, at any position", async () => {
    const outbox = db.collection(OUTBOX_COLLECTION);
    const ws = await workspaceWhere(() => true);
    const [endpoint] = await new EndpointsRepo(db).enabledFor(ws);
    const ev = {
      eventId: `evt_twice_${ws}`,
      event: "account.qr",
      workspaceId: ws,
      accountId: "acc",
      payload: {},
    };
    await new OutboxRepo(db, "n1").record(ev, [endpoint]);
    const row = await outbox.findOne({ eventId: ev.eventId });
    await assert.rejects(
      outbox.insertOne({ ...row, _id: `${row!._id}_elsewhere`, seq: 99 } as any),
      (err: unknown) => isDuplicateKey(err),
    );
  });
});
