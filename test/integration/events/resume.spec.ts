// Socket.IO resume over a real gateway: a socket that was away for 5 s and reconnects with its last
// cursor gets every event it missed, then live ones, each exactly once and in order; `emit("resume")`
// on an open socket replays the same way.
import { strict as assert } from "node:assert";
import type { ServiceBroker, ServiceSchema } from "moleculer";
import { MongoClient } from "mongodb";
import AccountsService from "../../../services/accounts.service.ts";
import { createApiService } from "../../../services/api.service.ts";
import IoService from "../../../services/io.service.ts";
import SessionService from "../../../services/session.service.ts";
import type { AccountView } from "../../../src/accounts/types.ts";
import { DatabaseUnavailableError } from "../../../src/errors.ts";
import { SnapshotHold } from "../../../src/io/relay.ts";
import { EventsRepo, eventId } from "../../../src/store/events-repo.ts";
import { TestCluster, type ConfigOverrides } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";
import { RecordingSocket, gatewayPort } from "../io/support.ts";
import { connectedAccount, LONG_QR, simulateMessage } from "./support.ts";

const ADMIN = "events-resume-admin-key-of-32-chars";
const AWAY_MS = 5000;

/** Texts of the account.message events a socket received, in arrival order. */
function textsOf(s: RecordingSocket, accountId: string): string[] {
  return s.received
    .filter((r) => r.event === "account.message" && r.payload.accountId === accountId)
    .map((r) => r.payload.text);
}

function lastCursorOf(s: RecordingSocket): string {
  const cursors = s.received.map((r) => r.payload.cursor).filter((c) => typeof c === "string");
  return String(cursors.at(-1));
}

describe("events: Socket.IO resume from a cursor", function () {
  this.timeout(90000);
  let cluster: TestCluster;
  let gw: ServiceBroker;
  let url: string;
  let key: string;
  let account: AccountView;
  const sockets: RecordingSocket[] = [];
  let sent = 0;
  /** While set, the gateway's `accounts.snapshot` answers only once it resolves (a slow snapshot). */
  let snapshotGate: Promise<void> | null = null;
  /** While set, the gateway's `accounts.events` (a replay's page) answers only once it resolves. */
  let eventsGate: Promise<void> | null = null;

  const send = async (n: number) => {
    for (let i = 0; i < n; i++) await simulateMessage(gw, "evR", account.id, sent++);
  };
  const expected = () => Array.from({ length: sent }, (_, i) => `m${i}`);
  const open = (auth: Record<string, unknown>) => {
    const s = new RecordingSocket(url, { token: key, ...auth }, "evR");
    sockets.push(s);
    return s;
  };

  beforeEach(async () => {
    cluster = new TestCluster({ adminApiKey: ADMIN, rateLimitPerMinute: 100000, qr: LONG_QR }, "evio");
    const overrides: ConfigOverrides = { services: ["api", "io", "accounts"], port: 0 };
    gw = cluster.node(
      "gw",
      [
        createApiService(cluster.config("gw", overrides)),
        IoService,
        {
          name: "accounts",
          mixins: [AccountsService as unknown as ServiceSchema],
          hooks: {
            before: {
              snapshot: async () => void (await snapshotGate),
              events: async () => void (await eventsGate),
            },
          },
        },
      ],
      overrides,
    );
    cluster.node("w1", [SessionService as unknown as ServiceSchema], { services: ["session"] });
    await cluster.start();
    await gw.waitForServices(["session", "accounts", "api"], 15000);
    url = `http://127.0.0.1:${gatewayPort(gw)}`;
    key = ((await gw.call("api.createKey", { workspaceId: "evR" })) as { key: string }).key;
    account = await connectedAccount(gw, "evR", "r");
    sent = 0;
  });
  afterEach(async () => {
    for (const s of sockets) s.close();
    sockets.length = 0;
    await cluster.stop();
  });

  it("a socket away for 5 s resumes with its last cursor: every missed event once, then live ones", async () => {
    const first = await open({}).ready();
    await send(5);
    await waitFor(() => textsOf(first, account.id).length === 5, { what: "5 live messages" });
    const cursor = lastCursorOf(first);
    first.close();

    // Events keep happening while the client is away.
    const awaySince = Date.now();
    while (Date.now() - awaySince < AWAY_MS) await send(1);

    // Reconnect with the cursor while more events are produced, so the replay and live relay overlap.
    const second = open({ after: cursor });
    const during = send(20);
    await second.ready();
    await during;
    await send(5);
    const want = expected().slice(5);
    await waitFor(() => textsOf(second, account.id).length >= want.length, {
      what: `${want.length} messages on the resumed socket`,
    });
    assert.deepEqual(textsOf(second, account.id), want, "each missed and live message once, in order");
    const cursors = second.received.map((r) => Number(r.payload.cursor)).filter((c) => !Number.isNaN(c));
    assert.ok(cursors[0] > Number(cursor));
    for (let i = 1; i < cursors.length; i++)
      assert.ok(cursors[i] > cursors[i - 1], "cursors strictly increase");
  });

  it('emit("resume", after) on an open socket replays the log after it, then live events, once', async () => {
    await send(10);
    const s = await open({}).ready();
    const during = send(10);
    const answer: { nextCursor: string } = await new Promise((resolve, reject) =>
      s.socket.emit("resume", "0", (err: unknown, res: { nextCursor: string }) =>
        err ? reject(err) : resolve(res),
      ),
    );
    await during;
    assert.match(answer.nextCursor, /^[0-9]+$/);
    await send(3);
    await waitFor(() => textsOf(s, account.id).length >= sent, { what: `${sent} messages` });
    const texts = textsOf(s, account.id);
    // Messages sent before the resume come from the replay; those during it from replay or live relay.
    assert.deepEqual(texts.slice(0, 10), expected().slice(0, 10));
    assert.deepEqual([...texts].sort(), [...expected()].sort(), "every message once");
    assert.deepEqual(texts, expected(), "in order");

    const bad: any = await new Promise((resolve) =>
      s.socket.emit("resume", "x1", (err: unknown) => resolve(err)),
    );
    assert.equal(bad.type, "VALIDATION_ERROR");
  });

  it("a cursor past the newest event (a restored database, another workspace's cursor) is refused, and live events flow", async () => {
    await send(3);
    let letGo!: () => void;
    snapshotGate = new Promise((r) => (letGo = r));
    let refused: any;
    const s = open({ after: "1000000" });
    try {
      s.socket.once("events.resume_error", (err: unknown) => (refused = err));
      await waitFor(() => s.socket.connected, { what: "the socket connected" });
      // Held for the socket while its snapshot loads: the refused cursor must not make it look had.
      await send(1);
    } finally {
      snapshotGate = null;
      letGo();
    }
    const refusal = await waitFor(() => refused, { what: "events.resume_error", timeoutMs: 5000 });
    assert.equal(refusal.type, "VALIDATION_ERROR", JSON.stringify(refusal));
    assert.equal(refusal.data?.field, "after");
    await s.ready();
    await waitFor(() => textsOf(s, account.id).includes("m3"), {
      what: "the event held while the snapshot loaded",
      timeoutMs: 5000,
    });
    const bad: any = await new Promise((resolve) =>
      s.socket.emit("resume", "2000000", (err: unknown) => resolve(err)),
    );
    assert.equal(bad?.type, "VALIDATION_ERROR", "a resume past the end too");
    await send(1);
    await waitFor(() => textsOf(s, account.id).includes("m4"), {
      what: "live events after the refused resume",
      timeoutMs: 5000,
    });
  });

  it("an event logged before a resume read it but broadcast after the socket rejoined its room arrives once", async () => {
    const s = await open({}).ready();
    await send(1);
    await waitFor(() => textsOf(s, account.id).length === 1, { what: "m0 live" });
    const cursor = lastCursorOf(s);
    // The worker's broadcast of m1 held back, as a slow status write between log and bus holds it.
    const w1 = cluster.brokers.find((b) => b.nodeID === "w1")!;
    const broadcast = w1.broadcast.bind(w1);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let heldBack = 0;
    w1.broadcast = ((event: string, payload: unknown, opts?: object) =>
      event === "account.message" && heldBack++ === 0
        ? gate.then(() => broadcast(event, payload, opts))
        : broadcast(event, payload, opts)) as typeof w1.broadcast;
    try {
      const sending = send(1);
      await waitFor(
        async () => {
          const page: { items: { payload: { text?: string } }[] } = await gw.call("accounts.events", {
            workspaceId: "evR",
            after: cursor,
          });
          return page.items.some((i) => i.payload.text === "m1");
        },
        { what: "m1 in the log" },
      );
      const answer: { nextCursor: string } = await new Promise((resolve, reject) =>
        s.socket.emit("resume", cursor, (err: unknown, res: { nextCursor: string }) =>
          err ? reject(err) : resolve(res),
        ),
      );
      assert.ok(Number(answer.nextCursor) > Number(cursor), "m1 replayed");
      release();
      await sending;
    } finally {
      release();
      w1.broadcast = broadcast;
    }
    // m2 leaves the worker after m1's broadcast: once it is here, so is m1's.
    await send(1);
    await waitFor(() => textsOf(s, account.id).includes("m2"), { what: "m2 live" });
    assert.deepEqual(textsOf(s, account.id), ["m0", "m1", "m2"], "m1 once: replayed, not relayed again");
  });

  it("a resume that meets a gap an insert in flight leaves waits for it: the events logged past it arrive too", async () => {
    const first = await open({}).ready();
    await send(1);
    await waitFor(() => textsOf(first, account.id).length === 1, { what: "m0 live" });
    const cursor = Number(lastCursorOf(first));
    first.close();
    // A writer took the next position and has not committed it; another logged (and broadcast, to
    // nobody listening) the two events after it.
    const client = await MongoClient.connect(cluster.mongoUrl);
    try {
      const log = new EventsRepo(client.db());
      const logged = (seq: number, text: string) =>
        log.col.insertOne({
          _id: eventId("evR", seq),
          workspaceId: "evR",
          seq,
          event: "account.message",
          payload: { accountId: account.id, workspaceId: "evR", text },
          at: new Date(),
        });
      await logged(cursor + 2, "past the gap 1");
      await logged(cursor + 3, "past the gap 2");
      const second = open({ after: String(cursor) });
      // The insert in flight commits while the socket's replay waits at its position.
      await new Promise((r) => setTimeout(r, 300));
      await logged(cursor + 1, "the gap");
      await second.ready();
      await waitFor(() => textsOf(second, account.id).length >= 3, { what: "the three logged events" });
      assert.deepEqual(textsOf(second, account.id), ["the gap", "past the gap 1", "past the gap 2"]);
    } finally {
      await client.close();
    }
  });

  it('emit("resume", cb) without a cursor is answered: the log from its start', async () => {
    await send(2);
    const s = await open({}).ready();
    const answer: { nextCursor: string; more: boolean } = await new Promise((resolve, reject) => {
      const unanswered = setTimeout(() => reject(new Error("resume(cb) not answered within 5 s")), 5000);
      s.socket.emit("resume", (err: unknown, res: { nextCursor: string; more: boolean }) => {
        clearTimeout(unanswered);
        return err ? reject(err) : resolve(res);
      });
    });
    assert.equal(answer.more, false);
    await waitFor(() => textsOf(s, account.id).length >= 2, { what: "the replayed messages" });
    assert.deepEqual(textsOf(s, account.id), ["m0", "m1"]);
  });

  /** Appends `count` status events of account "bulk" (payload `n` = 0, 1, …) to the workspace's log. */
  async function logBulk(count: number, workspaceId = "evR"): Promise<void> {
    const client = await MongoClient.connect(cluster.mongoUrl);
    try {
      const log = new EventsRepo(client.db());
      await Promise.all(
        Array.from({ length: count }, (_, n) =>
          log.append(workspaceId, "account.status", {
            workspaceId,
            accountId: "bulk",
            status: "connected",
            n,
          }),
        ),
      );
    } finally {
      await client.close();
    }
  }

  it("a snapshot of a workspace this gateway relayed nothing of yet carries the log's head as its cursor", async () => {
    // Logged while this gateway was not there (say, before it restarted): nothing relayed here.
    await logBulk(3, "evQ");
    const keyQ = ((await gw.call("api.createKey", { workspaceId: "evQ" })) as { key: string }).key;
    const s = new RecordingSocket(url, { token: keyQ }, "evQ");
    sockets.push(s);
    await s.ready();
    // A client that drops now and resumes from it gets what was logged meanwhile (without a cursor it
    // would reconnect with none, and lose that).
    assert.equal((s.snapshot as { cursor?: string }).cursor, "3");
  });

  it("a replay longer than a page goes out page after page, each event once, in order", async () => {
    // Logged straight into the workspace's log: 1,200 status events (three replay pages).
    await logBulk(1200);
    const s = await open({}).ready();
    const answer: { nextCursor: string } = await new Promise((resolve, reject) =>
      s.socket.emit("resume", "0", (err: unknown, res: { nextCursor: string }) =>
        err ? reject(err) : resolve(res),
      ),
    );
    const bulk = () => s.received.filter((r) => r.payload.accountId === "bulk").map((r) => r.payload.n);
    await waitFor(() => bulk().length >= 1200, { what: "1,200 replayed events" });
    assert.deepEqual(
      bulk(),
      Array.from({ length: 1200 }, (_, n) => n),
    );
    assert.ok(Number(answer.nextCursor) >= 1200);
  });

  it("a replay stops after 2,000 events and says where to continue; live events follow only the whole log", async () => {
    // Logged straight into the workspace's log: 2,100 status events after the account's own.
    await logBulk(2100);
    const s = open({ after: "0" });
    let stopped: { nextCursor: string } | undefined;
    s.socket.once("events.resume_more", (more: { nextCursor: string }) => (stopped = more));
    const more = await waitFor(() => stopped, { what: "events.resume_more after the capped replay" });
    const bulk = () => s.received.filter((r) => r.payload.accountId === "bulk").map((r) => r.payload.n);
    const cursors = () => s.received.map((r) => Number(r.payload.cursor));
    assert.equal(s.received.length, 2000, "four pages of 500");
    assert.equal(String(cursors().at(-1)), more.nextCursor);
    // Not in its room yet: a live event waits for the rest of the log.
    await send(1);
    const answer: { nextCursor: string; more: boolean } = await new Promise((resolve, reject) =>
      s.socket.emit("resume", more.nextCursor, (err: unknown, res: { nextCursor: string; more: boolean }) =>
        err ? reject(err) : resolve(res),
      ),
    );
    assert.equal(answer.more, false);
    await send(1);
    await waitFor(() => textsOf(s, account.id).length === 2, { what: "m0 (from the log) and m1 (live)" });
    assert.deepEqual(
      bulk(),
      Array.from({ length: 2100 }, (_, n) => n),
    );
    assert.deepEqual(textsOf(s, account.id), ["m0", "m1"]);
    for (let i = 1; i < cursors().length; i++)
      assert.ok(cursors()[i] > cursors()[i - 1], "each once, in order");
  });

  it("a QR shown while a capped replay ran reaches the socket at the cap (QR codes are not in the log)", async () => {
    await logBulk(2100);
    let letGo!: () => void;
    eventsGate = new Promise((resolve) => (letGo = resolve));
    try {
      const watcher = await open({}).ready();
      const s = open({ after: "0" });
      await waitFor(() => s.snapshot, { what: "the snapshot" });
      // The replay's first page waits: a new account shows its QR meanwhile (held for the socket).
      const created: AccountView = await gw.call("accounts.create", { workspaceId: "evR" });
      const qrOf = (r: RecordingSocket) =>
        r.received.some((e) => e.event === "account.qr" && e.payload.accountId === created.id);
      await waitFor(() => qrOf(watcher), { what: "the QR relayed by the gateway" });
      let stopped = false;
      s.socket.once("events.resume_more", () => (stopped = true));
      letGo();
      await waitFor(() => stopped, { what: "events.resume_more after the capped replay" });
      assert.ok(qrOf(s), "the QR shown during the replay");
    } finally {
      eventsGate = null;
      letGo();
    }
  });

  it("a socket waiting to continue a capped replay still gets QR codes (they are not in the log)", async () => {
    await logBulk(2100);
    const s = open({ after: "0" });
    let stopped = false;
    s.socket.once("events.resume_more", () => (stopped = true));
    await waitFor(() => stopped, { what: "events.resume_more after the capped replay" });
    // The client does not continue yet (e.g. its resume is refused by the calls quota for a minute):
    // a QR shown meanwhile must still reach it, or the person sees an expired code.
    const created: AccountView = await gw.call("accounts.create", { workspaceId: "evR" });
    await waitFor(
      () => s.received.some((e) => e.event === "account.qr" && e.payload.accountId === created.id),
      { what: "the new account's QR on the socket out of its room", timeoutMs: 5000 },
    );
    assert.ok(
      !s.received.some((e) => e.event === "account.created" && e.payload.account?.id === created.id),
      "logged events still wait for the rest of the log",
    );
  });

  it("a resume after a capped replay refused other than by the quota: the socket gets live events again", async () => {
    await logBulk(2100);
    const s = open({ after: "0" });
    let stopped: { nextCursor: string } | undefined;
    s.socket.once("events.resume_more", (more: { nextCursor: string }) => (stopped = more));
    const more = await waitFor(() => stopped, { what: "events.resume_more after the capped replay" });
    // The workspace's quotas cannot be read for the resume (the database went away for a moment).
    const quotas = (
      gw.getLocalService("api") as unknown as { quotas: { of: (ws: string) => Promise<unknown> } }
    ).quotas;
    const of = quotas.of;
    quotas.of = async () => {
      quotas.of = of;
      throw new DatabaseUnavailableError("connect ECONNREFUSED");
    };
    try {
      const refused: { type?: string } = await new Promise((resolve) =>
        s.socket.emit("resume", more.nextCursor, (err: { type?: string }) => resolve(err)),
      );
      assert.equal(refused?.type, "DATABASE_UNAVAILABLE");
    } finally {
      quotas.of = of;
    }
    await send(1);
    await waitFor(() => textsOf(s, account.id).includes("m0"), { what: "a live event on the socket" });
  });

  it("a socket whose held events overflowed while its snapshot loaded is told to continue from the log, and misses none", async () => {
    // A hold of 5 events per socket (10,000 by default) stands in for a busy workspace.
    const io = gw.getLocalService("io") as unknown as { snapshotHold: SnapshotHold };
    const hold = io.snapshotHold;
    io.snapshotHold = new SnapshotHold(5);
    let letGo!: () => void;
    snapshotGate = new Promise((r) => (letGo = r));
    try {
      await send(2);
      const s = open({});
      let more: { nextCursor: string } | undefined;
      s.socket.once("events.resume_more", (m: { nextCursor: string }) => (more = m));
      await waitFor(() => s.socket.connected, { what: "the socket connected" });
      await send(8);
      snapshotGate = null;
      letGo();
      const next = await waitFor(() => more, { what: "events.resume_more after the hold overflowed" });
      assert.equal(
        next.nextCursor,
        (s.snapshot as { cursor?: string }).cursor,
        "from what the snapshot covers",
      );
      const answer: { more: boolean } = await new Promise((resolve, reject) =>
        s.socket.emit("resume", next.nextCursor, (err: unknown, res: { more: boolean }) =>
          err ? reject(err) : resolve(res),
        ),
      );
      assert.equal(answer.more, false);
      await send(2);
      await waitFor(() => textsOf(s, account.id).length >= 10, { what: "the messages after the snapshot" });
      assert.deepEqual(textsOf(s, account.id), expected().slice(2), "each once, in order, none lost");
    } finally {
      io.snapshotHold = hold;
      snapshotGate = null;
      letGo();
    }
  });

  it("a resume asked while the connect's snapshot loads waits for it: snapshot, what came meanwhile, then the log in order", async () => {
    await send(10);
    let letGo!: () => void;
    snapshotGate = new Promise((r) => (letGo = r));
    const s = open({});
    // Events received before the snapshot (there must be none).
    let beforeSnapshot = -1;
    s.socket.once("accounts.snapshot", () => (beforeSnapshot = s.received.length));
    const answered = new Promise<{ nextCursor: string }>((resolve, reject) =>
      s.socket.once("connect", () =>
        s.socket.emit("resume", "0", (err: unknown, res: { nextCursor: string }) =>
          err ? reject(err) : resolve(res),
        ),
      ),
    );
    await waitFor(() => s.socket.connected, { what: "the socket connected" });
    // Live events while the snapshot is held, then the snapshot goes out.
    await send(10);
    snapshotGate = null;
    letGo();
    await answered;
    await send(3);
    const fromReplay = () => textsOf(s, account.id).slice(textsOf(s, account.id).indexOf("m0"));
    await waitFor(() => fromReplay().length >= sent, { what: `${sent} messages from the replay on` });
    assert.equal(beforeSnapshot, 0, "nothing before the snapshot");
    const texts = textsOf(s, account.id);
    // Live events of the connect phase come right after the snapshot, before the replay asked for.
    assert.deepEqual(texts.slice(0, texts.indexOf("m0")), expected().slice(10, 20));
    assert.deepEqual(fromReplay(), expected(), "from the replay on, every message once, in order");
  });
});
