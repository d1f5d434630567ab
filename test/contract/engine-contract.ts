// One contract suite for every engine (socket.io-redis-adapter's `testSuite(createAdapter)` habit):
//   engineContractSuite("simulated", (opts) => new SimulatedEngine(opts), { canScan: true });
//   engineContractSuite("webjs", createWebjsEngine, { showsQr: false, expectStartFailure: "whatsapp_unreachable" });
// Runs against the real AuthStore (GridFS on the run's MongoDB-wire server). What needs a phone (or
// WhatsApp itself) sits behind a capability flag.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { MongoClient } from "mongodb";
import {
  ENGINE_EVENT_NAMES,
  type Engine,
  type EngineEvents,
  type EngineOptions,
  type IncomingMessage,
  type QrPolicy,
} from "../../src/engines/base.ts";
import type { FailureReason } from "../../src/lifecycle/states.ts";
import type { MessageAck, OutboundMessage } from "../../src/messages/types.ts";
import { GridFsAuthStore } from "../../src/store/auth-store.ts";
import { assertDelivered, type DeliveredMessage } from "./delivered.ts";
import { directoryContract, type DirectoryContractOptions } from "./directory-contract.ts";
import { mongoUrlFor, testSecrets } from "../support/env.ts";
import { waitFor } from "../support/wait.ts";

export type { DeliveredMessage };

export interface EngineContractOptions {
  /** The engine has `simulate` hooks, so a device can be linked without a phone: enables the scan,
   * restore, disconnect, message, sendText and logout tests. @default false */
  canScan?: boolean;
  /** The engine reaches a QR here (needs WhatsApp Web, or a simulation of it). @default true */
  showsQr?: boolean;
  /** When set, a fresh start must end in `failed` with this reason (e.g. webjs offline:
   * `whatsapp_unreachable`) and show no QR. @default undefined */
  expectStartFailure?: FailureReason;
  /** QR policy given to the engine. @default {firstTtlMs: 300, refreshMs: 100, max: 3} */
  qr?: QrPolicy;
  /** Time allowed for the first event of a start. @default 15000 */
  startTimeoutMs?: number;
  /** Extra engine options (chromiumPath, profileDir, ...). */
  engineOptions?: Partial<EngineOptions>;
  /** Message types the engine can send here (the send test sends these, and a reaction only when
   * listed); none: the send test is skipped, saying `sendSkipped`. @default every type of the test */
  sendTypes?: readonly OutboundMessage["type"][];
  /** Why the send test cannot run here (with `sendTypes: []`). */
  sendSkipped?: string;
  /** What the other side (WhatsApp, or its stand-in) received of the messages sent for `accountId`:
   * the send test then checks each against what it sent. @default undefined (not checked) */
  delivered?: (accountId: string) => readonly DeliveredMessage[];
  /** Directory calls (chats, contacts, groups) that cannot run here, with why. */
  directory?: DirectoryContractOptions;
}

type EventName = keyof EngineEvents;
interface Seen {
  event: EventName;
  args: unknown[];
}

/** Records every contract event of `engine`, in order. */
function record(engine: Engine): Seen[] {
  const seen: Seen[] = [];
  for (const event of ENGINE_EVENT_NAMES)
    engine.on(event, ((...args: unknown[]) => seen.push({ event, args })) as any);
  return seen;
}

const names = (seen: Seen[]) => seen.map((s) => s.event);

export function engineContractSuite(
  name: string,
  makeEngine: (opts: EngineOptions) => Engine,
  options: EngineContractOptions = {},
): void {
  const {
    canScan = false,
    showsQr = true,
    expectStartFailure,
    qr = { firstTtlMs: 300, refreshMs: 100, max: 3 },
    startTimeoutMs = 15000,
  } = options;

  describe(`engine contract: ${name}`, function () {
    this.timeout(startTimeoutMs + 20000);
    let client: MongoClient;
    let authStore: GridFsAuthStore;
    const engines: Engine[] = [];

    before(async () => {
      client = await MongoClient.connect(mongoUrlFor(`contract_${name}_${randomBytes(3).toString("hex")}`));
      authStore = new GridFsAuthStore(client.db(), testSecrets());
    });
    afterEach(async () => {
      await Promise.all(engines.splice(0).map((e) => e.stop().catch(() => undefined)));
    });
    after(async () => client?.close());

    function newSessionId(): string {
      return `${name}_contract_${Math.floor(Date.now() / 1000)}_${randomBytes(4).toString("hex")}`;
    }

    function create(
      sessionId = newSessionId(),
      policy: QrPolicy = qr,
    ): { engine: Engine; seen: Seen[]; accountId: string } {
      const accountId = `acc_${randomBytes(8).toString("hex")}`;
      const engine = makeEngine({
        accountId,
        workspaceId: "contract",
        sessionId,
        authStore,
        qr: policy,
        startupTimeoutMs: startTimeoutMs,
        ...options.engineOptions,
      });
      engines.push(engine);
      return { engine, seen: record(engine), accountId };
    }

    const until = (seen: Seen[], event: EventName, what: string = event, timeoutMs = startTimeoutMs) =>
      waitFor(() => seen.find((s) => s.event === event), { what: `${name}: ${what}`, timeoutMs });

    it("has a name, and stop() is idempotent before and after start", async () => {
      const { engine } = create();
      assert.equal(typeof engine.name, "string");
      assert.ok(engine.name.length > 0);
      await engine.stop();
      await engine.stop();
      const other = create().engine;
      await other.start();
      await other.stop();
      await other.stop();
    });

    it("refuses to send a message before it is connected", async () => {
      const { engine } = create();
      await engine.start();
      await assert.rejects(engine.sendText("15550001111", "too early"));
      await assert.rejects(engine.send({ to: "15550001111", type: "text", text: "too early" }), {
        type: "INVALID_STATE",
      });
    });

    if (expectStartFailure) {
      it(`a fresh start ends in failed/${expectStartFailure}, with no QR`, async () => {
        const { engine, seen } = create();
        await engine.start().catch(() => undefined);
        const failed = await until(seen, "failed", `failed/${expectStartFailure}`);
        assert.equal(failed.args[0], expectStartFailure);
        assert.equal(typeof failed.args[1], "string");
        assert.ok(!names(seen).includes("qr"));
      });
    }

    if (showsQr) {
      it("shows QRs on the policy: first valid firstTtlMs, then refreshed, then failed/qr_timeout", async () => {
        const { engine, seen } = create();
        const t0 = Date.now();
        await engine.start();
        const failed = await until(seen, "failed", "qr_timeout");
        assert.deepEqual(names(seen), [...Array(qr.max).fill("qr"), "failed"]);
        assert.equal(failed.args[0], "qr_timeout");
        const qrs = seen
          .filter((s) => s.event === "qr")
          .map((s) => s.args[0] as { qr: string; seq: number; expiresAt: number });
        assert.deepEqual(
          qrs.map((q) => q.seq),
          qrs.map((_, i) => i + 1),
        );
        assert.equal(new Set(qrs.map((q) => q.qr)).size, qr.max, "every QR payload is new");
        for (const q of qrs) assert.ok(typeof q.qr === "string" && q.qr.length > 20);
        assert.ok(qrs[0].expiresAt >= t0 + qr.firstTtlMs, "first QR valid firstTtlMs");
        for (let i = 1; i < qrs.length; i++) {
          assert.ok(qrs[i].expiresAt - qrs[i - 1].expiresAt >= qr.refreshMs - 5, "refreshed every refreshMs");
        }
        const lastExpiry = qrs.at(-1)!.expiresAt;
        assert.ok(Date.now() >= lastExpiry - 5, "fails only after the last QR expired");
      });

      it("emits nothing after stop(): every timer is cleared", async () => {
        const { engine, seen } = create();
        await engine.start();
        await until(seen, "qr", "first QR");
        await engine.stop();
        const count = seen.length;
        // Absence can only be shown over time: wait past the whole QR policy.
        await new Promise((r) => setTimeout(r, qr.firstTtlMs + qr.refreshMs * qr.max + 50));
        assert.equal(seen.length, count, `events after stop: ${names(seen.slice(count))}`);
      });

      it("gives an 8-character pairing code while waiting for a link, and emits it", async () => {
        const { engine, seen } = create(newSessionId(), { ...qr, firstTtlMs: 10000 });
        await engine.start();
        await until(seen, "qr", "first QR");
        const code = await engine.requestPairingCode("15550002222");
        assert.match(code, /^[A-Z0-9]{8}$/);
        const event = await until(seen, "pairing_code");
        assert.deepEqual(event.args[0], { code, phoneNumber: "15550002222" });
      });
    }

    if (canScan) {
      /** Starts a fresh engine and links it to `phone`. */
      async function linked(phone = "15551230000", sessionId = newSessionId()) {
        const { engine, seen, accountId } = create(sessionId, { ...qr, firstTtlMs: 10000 });
        await engine.start();
        await until(seen, "qr", "first QR");
        await engine.simulate!.scan(phone);
        await until(seen, "ready", "ready after scan");
        return { engine, seen, sessionId, accountId };
      }

      it("scan → authenticated → ready with the phone number, and the auth state is saved", async () => {
        const { seen, sessionId } = await linked("15551234567");
        assert.deepEqual(names(seen), ["qr", "authenticated", "ready"]);
        assert.equal((seen[2].args[0] as { phoneNumber: string }).phoneNumber, "15551234567");
        assert.ok(await authStore.has(sessionId));
      });

      it("a start with saved auth state goes straight to authenticated → ready, with no QR", async () => {
        const { engine, sessionId } = await linked("15557654321");
        await engine.stop();
        const again = create(sessionId);
        await again.engine.start();
        await until(again.seen, "ready", "restored ready");
        assert.deepEqual(names(again.seen), ["authenticated", "ready"]);
        assert.equal((again.seen[1].args[0] as { phoneNumber: string }).phoneNumber, "15557654321");
      });

      it("disconnect → disconnected, then reconnects by itself → ready", async () => {
        const { engine, seen } = await linked();
        seen.length = 0;
        await engine.simulate!.disconnect();
        await until(seen, "ready", "reconnect");
        assert.deepEqual(names(seen), ["disconnected", "ready"]);
        assert.equal(typeof seen[0].args[0], "string");
      });

      it("relays incoming messages and sends text once connected", async () => {
        const { engine, seen } = await linked("15550009999");
        await engine.simulate!.message("15558887777", "hello");
        const msg = (await until(seen, "message")).args[0] as {
          id: string;
          from: string;
          text: string;
          timestamp: number;
        };
        assert.equal(msg.from, "15558887777");
        assert.equal(msg.text, "hello");
        assert.ok(msg.id && msg.timestamp > 0);
        const sent = await engine.sendText("15558887777", "hi back");
        assert.ok(typeof sent.id === "string" && sent.id.length > 0);
      });

      it("relays an incoming media message with its bytes, and a group reply with its author and quoted id", async () => {
        const { engine, seen } = await linked("15550007777");
        const pdf = Buffer.from("%PDF-1.4\n% a received invoice\n%%EOF\n");
        await engine.simulate!.message("15558887777", "the invoice", {
          type: "document",
          media: { data: pdf, mimetype: "application/pdf", filename: "invoice.pdf" },
        });
        const doc = (await until(seen, "message", "media message")).args[0] as IncomingMessage;
        assert.equal(doc.from, "15558887777");
        assert.equal(doc.type, "document");
        assert.equal(doc.text, "the invoice");
        assert.equal(doc.media?.mimetype, "application/pdf");
        assert.equal(doc.media?.filename, "invoice.pdf");
        assert.ok(doc.media?.data.equals(pdf), "the same bytes");

        seen.length = 0;
        const group = "120363012345678901@g.us";
        await engine.simulate!.message(group, "got it", { author: "15551112222", quotedId: doc.id });
        const reply = (await until(seen, "message", "group reply")).args[0] as IncomingMessage;
        assert.equal(reply.from, group);
        assert.equal(reply.author, "15551112222");
        assert.equal(reply.quotedId, doc.id);
        assert.equal(reply.type ?? "text", "text");
        assert.equal(reply.text, "got it");
        assert.equal(reply.media, undefined);
      });

      it("send(message) of every type resolves with an id; receipts follow in order, none for a reaction", async function () {
        if (options.sendTypes?.length === 0) {
          console.log(`      skipped: ${options.sendSkipped ?? "this engine sends nothing here"}`);
          this.skip();
        }
        const { engine, seen, accountId } = await linked("15550008888");
        const to = "15558887777";
        const png = Buffer.concat([Buffer.from("89504e470d0a1a0a", "hex"), Buffer.alloc(16)]);
        const pdf = Buffer.from("%PDF-1.4\n% an invoice sent\n%%EOF\n");
        const ogg = Buffer.concat([Buffer.from("OggS"), Buffer.alloc(60, 1)]);
        const mp4 = Buffer.concat([Buffer.from("000000186674797069736f6d", "hex"), Buffer.alloc(40, 2)]);
        const messages: OutboundMessage[] = [
          { to, type: "text", text: "hi @15558887777", mentions: ["15558887777"] },
          { to, type: "image", media: { data: png, mimetype: "image/png" }, caption: "c" },
          {
            to,
            type: "document",
            media: { data: pdf, mimetype: "application/pdf", filename: "invoice.pdf" },
            caption: "the invoice",
          },
          { to, type: "audio", media: { data: ogg, mimetype: "audio/ogg; codecs=opus" } },
          { to, type: "video", media: { data: mp4, mimetype: "video/mp4" }, caption: "a clip" },
          { to, type: "location", location: { latitude: 1, longitude: 2 } },
          { to, type: "contact", contact: { name: "Ann", phoneNumber: "+15550001111" } },
        ];
        const sendable = (type: OutboundMessage["type"]) =>
          !options.sendTypes || options.sendTypes.includes(type);
        const sent: { id: string; message: OutboundMessage }[] = [];
        for (const message of messages.filter((m) => sendable(m.type)))
          sent.push({ id: (await engine.send(message)).id, message });
        assert.ok(sent.length > 0, "the engine sends at least one type");
        const first = sent[0].id;
        if (sendable("text")) {
          const reply: OutboundMessage = { to, type: "text", text: "a reply", replyTo: first };
          sent.push({ id: (await engine.send(reply)).id, message: reply });
        }
        const ids = sent.map((s) => s.id);
        assert.equal(new Set(ids).size, ids.length, "distinct ids");
        const reacting: OutboundMessage = { to, type: "reaction", replyTo: first, emoji: "👍" };
        const reaction = sendable("reaction") ? await engine.send(reacting) : null;
        if (reaction) assert.ok(reaction.id);
        if (sendable("reaction"))
          await assert.rejects(
            engine.send({ ...reacting, replyTo: `${first.slice(0, -4)}FFFF` }),
            { type: "MESSAGE_NOT_FOUND", code: 422 },
            "a reaction to a message the account does not have",
          );
        const acksOf = (id: string) =>
          seen
            .filter((s) => s.event === "message_ack" && (s.args[0] as MessageAck).id === id)
            .map((s) => (s.args[0] as MessageAck).status);
        await waitFor(() => ids.every((id) => acksOf(id).includes("read")), {
          what: `${name}: every message read`,
        });
        for (const { id, message } of sent) {
          // A voice note may also be played once read.
          assert.deepEqual(
            acksOf(id).slice(0, 3),
            ["sent", "delivered", "read"],
            `receipts of ${message.type}`,
          );
          assert.ok(acksOf(id).length === 3 || (message.type === "audio" && acksOf(id)[3] === "played"));
        }
        if (reaction) assert.deepEqual(acksOf(reaction.id), []);
        if (options.delivered) {
          const delivered = options.delivered(accountId);
          for (const { id, message } of sent)
            assertDelivered(
              delivered.find((d) => d.id === id),
              message,
              message.replyTo ? "reply" : message.type,
            );
          if (reaction)
            assertDelivered(
              delivered.find((d) => d.type === "reaction" && d.replyTo === first),
              reacting,
              "reaction",
            );
        }
      });

      it("logout → logged_out and the auth state is deleted (engine.logout and phone-side logout)", async () => {
        const a = await linked();
        await a.engine.logout();
        await until(a.seen, "logged_out");
        assert.equal(await authStore.has(a.sessionId), false);

        const b = await linked();
        await b.engine.simulate!.logout();
        await until(b.seen, "logged_out", "phone-side logout");
        assert.equal(await authStore.has(b.sessionId), false);
      });

      directoryContract(
        name,
        linked,
        async () => {
          const { engine } = create();
          await engine.start().catch(() => undefined);
          return engine;
        },
        options.directory,
      );

      it("flushAuthState() persists the current auth state", async () => {
        const { engine, sessionId } = await linked();
        await authStore.delete(sessionId);
        await engine.flushAuthState();
        assert.ok(await authStore.has(sessionId));
      });
    }
  });
}
