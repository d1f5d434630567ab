// The dashboard in real headless Chromium against a real cluster (gateway + two workers, simulated
// engine): a person pastes a key, connects an account, sees the live QR, "scans" it and sees the
// account connected; sends a message and sees it and a reply live; a failure reads as words; the admin
// key shows the cluster. Each step leaves a screenshot under artifacts/e2e/.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { MongoClient } from "mongodb";
import { io as connectSocket } from "socket.io-client";
import { EventsRepo } from "../../src/store/events-repo.ts";
import { chromiumBaseFlags } from "../../src/engines/webjs/flags.ts";
import { testConfig } from "../support/cluster.ts";
import { testEnv } from "../support/env.ts";
import { waitFor } from "../support/wait.ts";
import { artifactPath, startSwitchboard, type RunningSwitchboard } from "./support.ts";

async function launchBrowser(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: testConfig().chromiumPath,
    headless: true,
    args: chromiumBaseFlags(),
    userDataDir: `${testEnv.dataDir}/chromium-dashboard-${randomBytes(3).toString("hex")}`,
  });
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: artifactPath(`dashboard-${name}.png`), fullPage: true });
}

async function signIn(page: Page, baseUrl: string, key: string): Promise<void> {
  await page.goto(`${baseUrl}/`, { waitUntil: "load" });
  await page.waitForSelector("#api-key", { visible: true });
  await page.type("#api-key", key);
  await page.keyboard.press("Enter");
}

/** Waits for `selector`; on a timeout the error also says what the page and the server knew of the
 * account (a rare miss under load left no trace but the selector). */
async function waitForOrExplain(
  page: Page,
  selector: string,
  accountId: string,
  server: () => Promise<unknown>,
): Promise<void> {
  try {
    await page.waitForSelector(selector);
  } catch (err) {
    const seen = await page
      .evaluate((id) => {
        // No inner functions: the test runner's transpiler would name them with a helper the page lacks.
        const sb = (window as unknown as { Switchboard?: { account(id: string): unknown } }).Switchboard;
        return {
          account: sb?.account(id),
          dialog: { ...(document.querySelector("#messages-dialog") as HTMLElement | null)?.dataset },
          notice: document.querySelector("#messages-notice")?.textContent,
          connection: document.querySelector("#connection")?.textContent,
        };
      }, accountId)
      .catch((e: Error) => `page unreadable: ${e.message}`);
    const known = await server().catch((e: Error) => `server unreadable: ${e.message}`);
    throw new Error(
      `${(err as Error).message}\npage: ${JSON.stringify(seen)}\nserver: ${JSON.stringify(known)}`,
      { cause: err },
    );
  }
}

const text = (page: Page, selector: string) =>
  page.$eval(selector, (el) => (el.textContent ?? "").trim().replace(/\s+/g, " "));

/** A switch that cuts the page's live connection: `away` closes its WebSockets and sends new ones (and
 * Socket.IO's polling) nowhere until `back`, which waits for the page to say it is live again. Set up
 * before the page loads; it turns request interception on (`onRequest` sees every request first). */
async function offlineSwitch(
  page: Page,
  onRequest: (url: string, method: string) => void = () => undefined,
): Promise<{ away(): Promise<void>; back(): Promise<void> }> {
  await page.evaluateOnNewDocument(() => {
    const Native = window.WebSocket;
    const w = window as unknown as { __sockets: WebSocket[]; __offline: boolean };
    w.__sockets = [];
    w.__offline = false;
    window.WebSocket = class extends Native {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(w.__offline ? "ws://127.0.0.1:9/" : url, protocols);
        w.__sockets.push(this);
      }
    };
  });
  let offline = false;
  await page.setRequestInterception(true);
  page.on("request", (req) => {
    onRequest(req.url(), req.method());
    if (offline && req.url().includes("/socket.io/")) void req.abort("internetdisconnected");
    else void req.continue();
  });
  return {
    async away() {
      offline = true;
      await page.evaluate(() => {
        const w = window as unknown as { __sockets: WebSocket[]; __offline: boolean };
        w.__offline = true;
        for (const s of w.__sockets) s.close();
      });
      await page.waitForSelector('#connection[data-state="error"]');
    },
    async back() {
      offline = false;
      await page.evaluate(() => ((window as unknown as { __offline: boolean }).__offline = false));
      await page.waitForSelector('#connection[data-state="live"]', { timeout: 15000 });
    },
  };
}

/** Resolves once the page's Socket.IO connection moved from polling to a WebSocket (see offlineSwitch):
 * closing that one is a dropped connection. */
const onWebSocket = (page: Page) =>
  page.waitForFunction(() =>
    (window as unknown as { __sockets: WebSocket[] }).__sockets.some((s) => s.readyState === 1),
  );

describe("dashboard (headless Chromium, real cluster)", function () {
  this.timeout(60000);
  let sb: RunningSwitchboard;
  let browser: Browser;

  before(async () => {
    // QRs refresh every second (so the test sees one refresh) and never time out during the test.
    [sb, browser] = await Promise.all([
      startSwitchboard({ workers: 2, shared: { qr: { firstTtlMs: 1200, refreshMs: 1000, max: 50 } } }),
      launchBrowser(),
    ]);
  });
  after(async () => {
    await browser?.close();
    await sb?.stop();
  });

  /** Links account `id` ("Desk", just created) by a simulated scan, signs the page in and opens the
   * account's Messages dialog, its socket on a WebSocket (offlineSwitch can cut it). */
  async function linkAndOpenMessages(
    page: Page,
    key: string,
    id: string,
    phoneNumber: string,
  ): Promise<void> {
    await waitFor(
      async () =>
        (await sb.rest<{ status: string }>("GET", `/api/v1/accounts/${id}`, key)).status === "qr_scanning",
      { what: "the account to show a QR" },
    );
    await sb.rest("POST", `/api/v1/accounts/${id}/simulate/scan`, key, { phoneNumber });
    await signIn(page, sb.baseUrl, key);
    const row = `tr[data-account-id="${id}"]`;
    await page.waitForSelector(`${row} .status[data-status="connected"]`);
    await page.click(`${row} button[aria-label="Messages of Desk"]`);
    await page.waitForSelector("#messages-dialog[open] #chats-empty:not([hidden])");
    await onWebSocket(page);
  }

  it("key → connect account → live QR → scan → connected", async () => {
    const ws = `dash${randomBytes(3).toString("hex")}`;
    const key = await sb.workspaceKey(ws);
    const page = await browser.newPage();
    await page.setViewport({ width: 1100, height: 760 });
    const pageErrors: string[] = [];
    page.on("pageerror", (err) => pageErrors.push(String(err)));

    await signIn(page, sb.baseUrl, key);
    await page.waitForSelector("#workspace:not([hidden])");
    await page.waitForSelector('#connection[data-state="live"]');
    assert.equal(await text(page, "#connection"), "Live");
    await screenshot(page, "1-signed-in");

    await page.type("#account-name", "Sales phone");
    await page.click("#connect-account");
    await page.waitForSelector("#qr-dialog[open]");
    const accountId = await page.$eval("#qr-dialog", (d) => (d as HTMLElement).dataset.accountId ?? "");
    assert.match(accountId, /^acc_/);

    // The QR arrives over Socket.IO as a PNG data URL and is shown as an image…
    await page.waitForSelector('#qr-image:not([hidden])[src^="data:image/png;base64,"]');
    const first = await page.$eval("#qr-image", (img) => ({
      seq: Number((img as HTMLImageElement).dataset.seq),
      loaded: (img as HTMLImageElement).complete && (img as HTMLImageElement).naturalWidth > 0,
    }));
    assert.ok(first.loaded, "the QR image decoded");
    await screenshot(page, "2-qr-shown");
    // …and is replaced as fresh codes arrive.
    await page.waitForFunction(
      (seq) => Number((document.getElementById("qr-image") as HTMLElement).dataset.seq) > seq,
      { timeout: 10000 },
      first.seq,
    );
    await screenshot(page, "3-qr-refreshed");
    const row = `tr[data-account-id="${accountId}"]`;
    assert.equal(await text(page, `${row} .status`), "Waiting for QR scan");

    // The phone scans it (simulated engine, through the public API).
    await sb.rest("POST", `/api/v1/accounts/${accountId}/simulate/scan`, key, {
      phoneNumber: "+15550001234",
    });
    await page.waitForSelector("#qr-dialog:not([open])");
    await page.waitForSelector(`${row} .status[data-status="connected"]`);
    assert.equal(await text(page, `${row} .status`), "Connected");
    await screenshot(page, "4-connected");

    // What the page shows is what the cluster holds.
    const account = await sb.rest("GET", `/api/v1/accounts/${accountId}`, key);
    assert.equal(account.status, "connected");
    assert.match(account.phoneNumber, /15550001234$/);
    assert.equal(await text(page, `${row} .phone`), account.phoneNumber);
    assert.equal(await text(page, `${row} .node`), account.node);
    assert.equal(await text(page, "#accounts-notice"), `Sales phone is connected as ${account.phoneNumber}.`);

    // A later change arrives live too, and is said in words (the phone unlinks the device).
    await sb.rest("POST", `/api/v1/accounts/${accountId}/simulate/logout`, key, {});
    await page.waitForSelector(`${row} .status[data-status="logged_out"]`);
    assert.equal(await text(page, "#accounts-notice"), "Sales phone was logged out by the phone.");
    assert.ok(await page.$(`${row} button[aria-label="Restart Sales phone"]`), "a way to reconnect it");

    // The key lives in this tab's sessionStorage: a reload opens the workspace again, from the snapshot.
    await page.reload({ waitUntil: "load" });
    await page.waitForSelector('#connection[data-state="live"]');
    await page.waitForSelector(`${row} .status[data-status="logged_out"]`);
    assert.equal(await page.$eval("#sign-in", (el) => (el as HTMLElement).hidden), true);
    assert.deepEqual(pageErrors, []);
    await page.close();
    // Leave no session behind for the cluster view's counts.
    await sb.rest("DELETE", `/api/v1/accounts/${accountId}`, key);
  });

  it("Messages: send a text (once, on a double click), see it with its receipts, and a reply arrive live", async () => {
    const ws = `msg${randomBytes(3).toString("hex")}`;
    const key = await sb.workspaceKey(ws);
    const page = await browser.newPage();
    await page.setViewport({ width: 1100, height: 900 });
    const pageErrors: string[] = [];
    page.on("pageerror", (err) => pageErrors.push(String(err)));
    await signIn(page, sb.baseUrl, key);
    await page.waitForSelector('#connection[data-state="live"]');

    // Connect an account as a person would: the QR dialog, then the phone scans.
    await page.type("#account-name", "Support phone");
    await page.click("#connect-account");
    await page.waitForSelector("#qr-dialog[open]");
    const accountId = await page.$eval("#qr-dialog", (d) => (d as HTMLElement).dataset.accountId ?? "");
    await page.waitForSelector('#qr-image:not([hidden])[src^="data:image/png"]');
    await sb.rest("POST", `/api/v1/accounts/${accountId}/simulate/scan`, key, {
      phoneNumber: "+15550004321",
    });
    await page.waitForSelector("#qr-dialog:not([open])");
    const row = `tr[data-account-id="${accountId}"]`;
    await page.waitForSelector(`${row} .status[data-status="connected"]`);

    await page.click(`${row} button[aria-label="Messages of Support phone"]`);
    await page.waitForSelector(`#messages-dialog[open][data-account-id="${accountId}"]`);
    assert.equal(await text(page, "#messages-title"), "Messages of Support phone");
    await page.waitForSelector("#chats-empty:not([hidden])");
    assert.equal(
      await page.evaluate(() => document.activeElement?.id),
      "send-to",
      "focus starts in the form",
    );

    // Every send the page makes, with its Idempotency-Key; the next one can be cut off on its way.
    const sendKeys: string[] = [];
    let cutNextSend = false;
    await page.setRequestInterception(true);
    page.on("request", (req) => {
      if (req.method() === "POST" && req.url().endsWith(`/api/v1/accounts/${accountId}/messages`)) {
        sendKeys.push(req.headers()["idempotency-key"] ?? "");
        if (cutNextSend) {
          cutNextSend = false;
          void req.abort("connectionreset");
          return;
        }
      }
      void req.continue();
    });

    // A recipient the API refuses: its reason, in words, and nothing sent.
    await page.type("#send-to", "not a number");
    await page.type("#send-text", "Hello from the dashboard");
    await page.click("#send-submit");
    await page.waitForFunction(() => document.getElementById("send-error")?.textContent);
    assert.equal(
      await text(page, "#send-error"),
      "Not sent: 'not a number' is neither a phone number nor a chat id",
    );

    // A phone number, but the connection drops: said so, and the retry carries the same key.
    await page.$eval("#send-to", (input) => ((input as HTMLInputElement).value = ""));
    await page.type("#send-to", "+49 151 2345678");
    cutNextSend = true;
    await page.click("#send-submit");
    await page.waitForFunction(() =>
      /reached/.test(document.getElementById("send-error")?.textContent ?? ""),
    );
    assert.equal(
      await text(page, "#send-error"),
      "The server could not be reached. Sending again will not send the message twice.",
    );
    // A double click sends once; the answer names the message and its status.
    await page.click("#send-submit", { clickCount: 2 });
    await page.waitForSelector('#send-result[data-status="sent"]');
    assert.equal(await text(page, "#send-error"), "");
    assert.equal(sendKeys.length, 3, "one request per submit, none for the second click");
    assert.match(sendKeys[0], /^dash-[0-9a-f]{32}$/);
    assert.notEqual(sendKeys[1], sendKeys[0], "another message, another key");
    assert.equal(sendKeys[2], sendKeys[1], "the retry of a send without an answer keeps its key");
    const sentId = await page.$eval("#send-result", (p) => (p as HTMLElement).dataset.messageId ?? "");
    assert.ok(sentId, "the answer names the message");
    assert.equal(await text(page, "#send-result"), `Sent: message ${sentId}.`);
    assert.equal(await page.$eval("#send-text", (t) => (t as HTMLTextAreaElement).value), "", "form cleared");

    // The chat is chosen and lists the message, direction and time; receipts arrive live up to read.
    const chatId = "491512345678@c.us";
    const sentItem = `#thread-list li[data-message-id="${sentId}"]`;
    await page.waitForSelector(`#thread-list[data-chat-id="${chatId}"] > li[data-message-id="${sentId}"]`);
    assert.equal(await text(page, "#thread-title"), "Chat with Contact 5678 (+491512345678)");
    assert.equal(await text(page, `${sentItem} .message-text`), "Hello from the dashboard");
    assert.equal(await text(page, `${sentItem} .direction`), "Sent by this account");
    assert.ok(await text(page, `${sentItem} time`), "a time is shown");
    await page.waitForSelector(`${sentItem} .ack[data-ack="read"]`);
    assert.equal(await text(page, `${sentItem} .ack`), "Read");
    const shown = await page.$$eval("#thread-list li[data-message-id]", (lis) =>
      lis.map((li) => (li as HTMLElement).dataset.messageId),
    );
    assert.deepEqual(shown, [sentId], "one message: the double click sent once");
    const api = `/api/v1/accounts/${accountId}/chats/${chatId}/messages?limit=20`;
    assert.deepEqual(
      (await sb.rest("GET", api, key)).items.map((m: { id: string }) => m.id),
      [sentId],
      "and the account sent exactly one",
    );
    assert.equal(
      (await sb.rest("GET", `/api/v1/accounts/${accountId}/messages/${sentId}`, key)).status,
      "read",
    );
    // Had the answer been lost instead, a retry with that key answers the first send, not a second one.
    const again = await fetch(`${sb.baseUrl}/api/v1/accounts/${accountId}/messages`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${key}`,
        "content-type": "application/json",
        "idempotency-key": sendKeys[2],
      },
      body: JSON.stringify({ to: "+49 151 2345678", type: "text", text: "Hello from the dashboard" }),
    });
    const repeat = await again.json();
    assert.deepEqual([again.status, repeat.id, repeat.duplicate], [200, sentId, true]);

    // The phone answers: the reply appears below the message without a reload, said in words.
    await sb.rest("POST", `/api/v1/accounts/${accountId}/simulate/message`, key, {
      from: "+491512345678",
      text: "Reply from the phone",
    });
    await page.waitForFunction(
      () => {
        const items = document.querySelectorAll("#thread-list li[data-message-id]");
        const last = items[items.length - 1] as HTMLElement | undefined;
        return items.length === 2 && last?.dataset.direction === "in";
      },
      { timeout: 10000 },
    );
    const newest = "#thread-list li[data-message-id]:last-child";
    assert.equal(await text(page, `${newest} .message-text`), "Reply from the phone");
    assert.equal(await text(page, `${newest} .direction`), "Received from +491512345678");
    assert.equal(await page.$(`${newest} .ack`), null, "no receipts for a received message");
    assert.equal(await text(page, "#messages-notice"), "New message from +491512345678.");

    // Someone else writes: a new chat joins the list live, newest first, with its unread count.
    await sb.rest("POST", `/api/v1/accounts/${accountId}/simulate/message`, key, {
      from: "+15550007777",
      text: "Hi, is this support?",
    });
    await page.waitForSelector('#chats-list button[data-chat-id="15550007777@c.us"]');
    const chats = await page.$$eval("#chats-list button", (bs) =>
      bs.map((b) => [(b as HTMLElement).dataset.chatId, b.getAttribute("aria-current")]),
    );
    assert.deepEqual(chats, [
      ["15550007777@c.us", null],
      [chatId, "true"],
    ]);
    assert.equal(await text(page, '#chats-list button[data-chat-id="15550007777@c.us"] .unread'), "1");
    await screenshot(page, "7-messages");

    // Choosing that chat shows its messages and addresses the form to it.
    await page.click('#chats-list button[data-chat-id="15550007777@c.us"]');
    await page.waitForSelector('#thread-list[data-chat-id="15550007777@c.us"] li[data-direction="in"]');
    assert.equal(await text(page, "#thread-list li .message-text"), "Hi, is this support?");
    assert.equal(await page.$eval("#send-to", (i) => (i as HTMLInputElement).value), "15550007777@c.us");

    // Escape closes it and focus goes back to the row's button.
    await page.keyboard.press("Escape");
    await page.waitForSelector("#messages-dialog:not([open])");
    await page.waitForFunction(
      () => document.activeElement?.getAttribute("aria-label") === "Messages of Support phone",
      { timeout: 2000 },
    );

    // Open again; the phone unlinks the device: nothing can be sent, and the dialog says why.
    await page.keyboard.press("Enter");
    await page.waitForSelector("#messages-dialog[open]");
    await page.waitForSelector('#chats-list button[data-chat-id="15550007777@c.us"]');
    await sb.rest("POST", `/api/v1/accounts/${accountId}/simulate/logout`, key, {});
    await waitForOrExplain(
      page,
      '#messages-dialog[data-connected="false"] #send-submit:disabled',
      accountId,
      () => sb.rest("GET", `/api/v1/accounts/${accountId}`, key),
    );
    assert.equal(
      await text(page, "#messages-notice"),
      "Support phone is not connected (logged out); messages cannot be sent or loaded now.",
    );
    await page.keyboard.press("Escape");
    await page.waitForSelector("#messages-dialog:not([open])");
    assert.equal(await page.$(`${row} button[aria-label="Messages of Support phone"]`), null);
    assert.deepEqual(pageErrors, []);
    await page.close();
    await sb.rest("DELETE", `/api/v1/accounts/${accountId}`, key);
  });

  it("a dropped connection: what happened meanwhile reaches the open Messages dialog once it is back", async () => {
    const ws = `away${randomBytes(3).toString("hex")}`;
    const key = await sb.workspaceKey(ws);
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (err) => pageErrors.push(String(err)));
    const { away, back } = await offlineSwitch(page);

    const created = await sb.rest<{ id: string }>("POST", "/api/v1/accounts", key, { name: "Desk" });
    await linkAndOpenMessages(page, key, created.id, "+15550004322");

    // A message arrives while the page is away: it is replayed after the reconnect, not lost.
    await away();
    await sb.rest("POST", `/api/v1/accounts/${created.id}/simulate/message`, key, {
      from: "+15550001111",
      text: "Sent while you were away",
    });
    await back();
    await page.waitForSelector('#thread-list[data-chat-id="15550001111@c.us"] li[data-direction="in"]');
    assert.equal(await text(page, "#thread-list li .message-text"), "Sent while you were away");
    assert.equal(await text(page, "#messages-notice"), "New message from +15550001111.");

    // The phone unlinks the device while the page is away: back, the dialog knows nothing can be sent.
    await away();
    await sb.rest("POST", `/api/v1/accounts/${created.id}/simulate/logout`, key, {});
    await back();
    await waitForOrExplain(
      page,
      '#messages-dialog[data-connected="false"] #send-submit:disabled',
      created.id,
      () => sb.rest("GET", `/api/v1/accounts/${created.id}`, key),
    );
    assert.equal(
      await text(page, "#messages-notice"),
      "Desk is not connected (logged out); messages cannot be sent or loaded now.",
    );
    assert.deepEqual(pageErrors, []);
    await page.close();
    await sb.rest("DELETE", `/api/v1/accounts/${created.id}`, key);
  });

  it("a reconnect's snapshot does not move the page's cursor past what its replay has yet to bring", async () => {
    const ws = `snap${randomBytes(3).toString("hex")}`;
    const key = await sb.workspaceKey(ws);
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (err) => pageErrors.push(String(err)));
    const { away, back } = await offlineSwitch(page);
    const created = await sb.rest<{ id: string }>("POST", "/api/v1/accounts", key, { name: "Desk" });
    // Another client of the workspace: what it hears, the gateway relayed (and its snapshots say so).
    const watcher = connectSocket(sb.baseUrl, { auth: { token: key }, transports: ["websocket"] });
    const heard: string[] = [];
    watcher.on("account.status", (p: { status: string }) => heard.push(p.status));
    try {
      await signIn(page, sb.baseUrl, key);
      await page.waitForSelector(`tr[data-account-id="${created.id}"] .status[data-status="qr_scanning"]`);
      await onWebSocket(page);
      type Page$ = { Switchboard: { cursor(): string | null; on(n: string, l: () => void): void } };
      const cursorOf = () => page.evaluate(() => (window as unknown as Page$).Switchboard.cursor());
      const before = await waitFor(cursorOf, { what: "the page to have a cursor" });
      await page.evaluate(() => {
        const w = window as unknown as Page$ & { __atSnapshot: (string | null)[] };
        w.__atSnapshot = [];
        w.Switchboard.on("accounts.snapshot", () => w.__atSnapshot.push(w.Switchboard.cursor()));
      });

      await away();
      await sb.rest("POST", `/api/v1/accounts/${created.id}/simulate/scan`, key, {
        phoneNumber: "+15550004324",
      });
      await waitFor(() => heard.includes("connected"), { what: "the gateway to relay `connected`" });
      await back();
      await page.waitForSelector(`tr[data-account-id="${created.id}"] .status[data-status="connected"]`);
      // The snapshot came before the replay: had it raised the cursor, a drop right then would have
      // resumed past the events the replay was about to send.
      const atSnapshot = await page.evaluate(
        () => (window as unknown as { __atSnapshot: unknown[] }).__atSnapshot,
      );
      assert.deepEqual(atSnapshot, [before]);
      // The row shows `connected` from the snapshot already; the replay's events come a read later.
      await waitFor(async () => Number(await cursorOf()) > Number(before), {
        what: `the replay to move the page's cursor on from ${before}`,
      });
      assert.deepEqual(pageErrors, []);
    } finally {
      watcher.close();
      await page.close();
      await sb.rest("DELETE", `/api/v1/accounts/${created.id}`, key);
    }
  });

  it("a dialog closed and at once opened again still follows its account", async () => {
    // The browser sends a dialog's "close" event a moment after it closed; under load a quick reopen
    // came first, and that late event then made the open dialog forget its account.
    const ws = `reopen${randomBytes(3).toString("hex")}`;
    const key = await sb.workspaceKey(ws);
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (err) => pageErrors.push(String(err)));
    const reopen = (dialog: string, id: string) =>
      page.evaluate(
        (dialogId, accountId, api) =>
          new Promise<void>((resolve) => {
            const d = document.getElementById(dialogId) as HTMLDialogElement;
            const view = (window as unknown as Record<string, { open(id: string): void; close(): void }>)[
              api
            ];
            // The page's own listener was added first, so it has run when this one resolves.
            d.addEventListener("close", () => resolve(), { once: true });
            view.close();
            view.open(accountId);
          }),
        dialog,
        id,
        dialog === "messages-dialog" ? "SwitchboardMessages" : "SwitchboardQrDialog",
      );

    await offlineSwitch(page); // unused here: linkAndOpenMessages expects it
    const desk = await sb.rest<{ id: string }>("POST", "/api/v1/accounts", key, { name: "Desk" });
    await linkAndOpenMessages(page, key, desk.id, "+15550004324");
    await reopen("messages-dialog", desk.id);
    await sb.rest("POST", `/api/v1/accounts/${desk.id}/simulate/logout`, key, {});
    await waitForOrExplain(
      page,
      '#messages-dialog[open][data-connected="false"] #send-submit:disabled',
      desk.id,
      () => sb.rest("GET", `/api/v1/accounts/${desk.id}`, key),
    );
    await page.keyboard.press("Escape");
    await page.waitForSelector("#messages-dialog:not([open])");

    const front = await sb.rest<{ id: string }>("POST", "/api/v1/accounts", key, { name: "Front" });
    const row = `tr[data-account-id="${front.id}"]`;
    await page.waitForSelector(`${row} .status[data-status="qr_scanning"]`);
    await page.click(`${row} button[aria-label="Show QR code of Front"]`);
    await page.waitForSelector(`#qr-dialog[open][data-account-id="${front.id}"] #qr-image:not([hidden])`);
    await reopen("qr-dialog", front.id);
    await sb.rest("POST", `/api/v1/accounts/${front.id}/simulate/scan`, key, { phoneNumber: "+15550004325" });
    // Connected, the dialog closes by itself and the page says so.
    await page.waitForSelector("#qr-dialog:not([open])");
    assert.equal(await text(page, "#accounts-notice"), "Front is connected as 15550004325.");
    assert.deepEqual(pageErrors, []);
    await page.close();
    await Promise.all([desk.id, front.id].map((id) => sb.rest("DELETE", `/api/v1/accounts/${id}`, key)));
  });

  it("a reconnect whose catching up the server refuses: the page reads everything again and says so", async () => {
    const ws = `lost${randomBytes(3).toString("hex")}`;
    // One socket call a minute: a test client spends it, so the page's reconnect (its replay is a
    // socket call) is answered `events.resume_error` QUOTA_EXCEEDED.
    await sb.rest("PUT", `/api/v1/workspaces/${ws}/quotas`, sb.adminKey, { socketCallsPerMinute: 1 });
    const key = await sb.workspaceKey(ws);
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (err) => pageErrors.push(String(err)));
    let accountListReads = 0;
    const { away, back } = await offlineSwitch(page, (url, method) => {
      if (method === "GET" && new URL(url).pathname === "/api/v1/accounts") accountListReads++;
    });
    const created = await sb.rest<{ id: string }>("POST", "/api/v1/accounts", key, { name: "Desk" });
    try {
      await linkAndOpenMessages(page, key, created.id, "+15550004323");
      const row = `tr[data-account-id="${created.id}"]`;
      assert.equal(accountListReads, 1, "the sign-in read the accounts");

      const spender = connectSocket(sb.baseUrl, { auth: { token: key }, transports: ["websocket"] });
      try {
        const call = () =>
          new Promise<{ type?: string } | null>((resolve) =>
            spender.emit("call", "accounts.list", {}, (err: { type?: string } | null) => resolve(err)),
          );
        assert.equal(await call(), null, "the minute's one socket call");
        assert.equal((await call())?.type, "QUOTA_EXCEEDED", "and no second one");
      } finally {
        spender.close();
      }

      // A message arrives while the page is away; back, its replay is refused.
      await away();
      await sb.rest("POST", `/api/v1/accounts/${created.id}/simulate/message`, key, {
        from: "+15550002222",
        text: "Sent while the log could not be replayed",
      });
      await back();
      await page.waitForSelector('#thread-list[data-chat-id="15550002222@c.us"] li[data-direction="in"]');
      assert.equal(
        await text(page, "#thread-list li .message-text"),
        "Sent while the log could not be replayed",
      );
      await page.waitForFunction(() =>
        /reloaded/.test(document.getElementById("messages-notice")!.textContent!),
      );
      assert.equal(
        await text(page, "#messages-notice"),
        "Live updates were missed and could not be caught up; the messages were reloaded.",
      );
      await page.waitForFunction(() =>
        /reloaded/.test(document.getElementById("accounts-notice")!.textContent!),
      );
      assert.equal(
        await text(page, "#accounts-notice"),
        "Live updates were missed and could not be caught up; the accounts were reloaded.",
      );
      assert.equal(accountListReads, 2, "the accounts were read again");
      assert.equal(await text(page, `${row} .status`), "Connected");
      assert.deepEqual(pageErrors, []);
    } finally {
      await page.close();
      await sb.rest("DELETE", `/api/v1/accounts/${created.id}`, key);
      await sb.rest("PUT", `/api/v1/workspaces/${ws}/quotas`, sb.adminKey, { socketCallsPerMinute: null });
    }
  });

  /** Records every state `#connection` takes from now on (in `window.__connectionStates`). */
  const recordConnectionStates = (page: Page) =>
    page.evaluate(() => {
      const w = window as unknown as { __connectionStates: string[] };
      const connection = document.getElementById("connection")!;
      w.__connectionStates = [];
      new MutationObserver(() => w.__connectionStates.push(connection.dataset.state ?? "")).observe(
        connection,
        { attributes: true, attributeFilter: ["data-state"] },
      );
    });
  /** Resolves once `#connection` went out of "live" and is "live" again. */
  const liveAgain = (page: Page) =>
    page.waitForFunction(
      () => {
        const states = (window as unknown as { __connectionStates: string[] }).__connectionStates;
        return states.includes("error") && states.at(-1) === "live";
      },
      { timeout: 20000 },
    );

  it("the gateway stops and comes back: the page is live again by itself", async () => {
    const key = await sb.workspaceKey(`back${randomBytes(3).toString("hex")}`);
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (err) => pageErrors.push(String(err)));
    await signIn(page, sb.baseUrl, key);
    await page.waitForSelector('#connection[data-state="live"]');
    await recordConnectionStates(page);

    await sb.restartGateway();
    await liveAgain(page);
    assert.equal(await text(page, "#connection"), "Live");
    assert.deepEqual(pageErrors, []);
    await page.close();
  });

  it("back after a long absence: the page asks for the log past one replay's cap, then is live", async () => {
    const ws = `long${randomBytes(3).toString("hex")}`;
    const key = await sb.workspaceKey(ws);
    const created = await sb.rest<{ id: string }>("POST", "/api/v1/accounts", key, { name: "Long" });
    const page = await browser.newPage();
    await signIn(page, sb.baseUrl, key);
    const row = `tr[data-account-id="${created.id}"]`;
    await page.waitForSelector(`${row} .status[data-status="qr_scanning"]`);
    await page.waitForSelector('#connection[data-state="live"]');
    // More than one replay's worth (2,000) logged while the page is connected but not told (straight
    // into the log), so its reconnect after the restart starts a replay that stops at the cap.
    const client = await MongoClient.connect(sb.cluster.mongoUrl);
    try {
      const log = new EventsRepo(client.db());
      for (let n = 0; n < 2100; n += 300)
        await Promise.all(
          Array.from({ length: 300 }, (_, i) =>
            log.append(ws, "account.status", {
              workspaceId: ws,
              accountId: "bulk",
              status: "connected",
              n: n + i,
            }),
          ),
        );
    } finally {
      await client.close();
    }
    await recordConnectionStates(page);
    await sb.restartGateway();
    await liveAgain(page);
    const bulkSeen = () =>
      page.evaluate(
        () =>
          (
            window as unknown as { Switchboard: { account(id: string): { n?: number } | undefined } }
          ).Switchboard.account("bulk")?.n ?? -1,
      );
    // The replay is under way (so the snapshot was read): a scan now reaches the page live only once
    // the page asked for the rest of the log.
    await waitFor(async () => (await bulkSeen()) >= 0, { what: "the replay to reach the page" });
    await sb.rest("POST", `/api/v1/accounts/${created.id}/simulate/scan`, key, {
      phoneNumber: "+15550009876",
    });
    await page.waitForSelector(`${row} .status[data-status="connected"]`, { timeout: 15000 });
    assert.equal(await bulkSeen(), 2099, "the whole log, in order");
    await page.close();
    await sb.rest("DELETE", `/api/v1/accounts/${created.id}`, key);
  });

  it("a refused connection (the workspace's sockets are all open) is retried until it is let in", async () => {
    const ws = `full${randomBytes(3).toString("hex")}`;
    await sb.rest("PUT", `/api/v1/workspaces/${ws}/quotas`, sb.adminKey, { sockets: 1 });
    const key = await sb.workspaceKey(ws);
    // Another client holds the workspace's only socket.
    const other = connectSocket(sb.baseUrl, { auth: { token: key }, transports: ["websocket"] });
    try {
      await new Promise((resolve, reject) => {
        other.once("accounts.snapshot", resolve);
        other.once("connect_error", reject);
      });
      const page = await browser.newPage();
      await signIn(page, sb.baseUrl, key);
      await page.waitForFunction(() =>
        /Retrying in/.test(document.getElementById("connection")!.textContent!),
      );
      assert.match(await text(page, "#connection"), /^Live updates failed: .*quota.* Retrying in \d+ s…$/);
      other.close();
      await page.waitForSelector('#connection[data-state="live"]', { timeout: 15000 });
      await page.close();
    } finally {
      other.close();
    }
  });

  it("a revoked key signs the page out and says why", async () => {
    const ws = `rev${randomBytes(3).toString("hex")}`;
    const { key, keyId } = await sb.rest<{ key: string; keyId: string }>(
      "POST",
      `/api/v1/workspaces/${ws}/keys`,
      sb.adminKey,
      {},
    );
    const page = await browser.newPage();
    await signIn(page, sb.baseUrl, key);
    await page.waitForSelector('#connection[data-state="live"]');

    await sb.rest("DELETE", `/api/v1/workspaces/${ws}/keys/${keyId}`, sb.adminKey);
    await page.waitForSelector("#sign-in:not([hidden])");
    assert.match(await text(page, "#key-error"), /revoked/);
    assert.equal(await text(page, "#connection"), "Signed out");
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, "the key is no longer kept");
    assert.equal(await page.$eval("#workspace", (el) => (el as HTMLElement).hidden), true);
    await page.close();
  });

  it("the admin key shows the cluster: nodes, sessions per node, placement of a workspace", async () => {
    const ws = `adm${randomBytes(3).toString("hex")}`;
    const key = await sb.workspaceKey(ws);
    const created = await sb.rest("POST", "/api/v1/accounts", key, { name: "placed" });
    // The first account places the workspace.
    const placement = await waitFor(
      () => sb.rest("GET", `/api/v1/cluster/placement/${ws}`, sb.adminKey).catch(() => null),
      { what: `workspace ${ws} to be placed` },
    );
    // Sessions per node come from the liveness leases: wait until the owner's counts the new session.
    type NodeItem = { nodeId: string; sessions: number; capacity: number; worker: boolean };
    const nodesNow = async () =>
      (await sb.rest<{ items: NodeItem[] }>("GET", "/api/v1/cluster/nodes", sb.adminKey)).items;
    await waitFor(
      async () => {
        const workers = (await nodesNow()).filter((n) => n.worker);
        const total = workers.reduce((sum, n) => sum + n.sessions, 0);
        return total === 1 && workers.find((n) => n.nodeId === placement.node)?.sessions === 1;
      },
      { what: "the leases to count exactly this session, on its owner" },
    );

    const page = await browser.newPage();
    await page.setViewport({ width: 1100, height: 760 });
    await signIn(page, sb.baseUrl, sb.adminKey);
    await page.waitForSelector('#cluster:not([hidden])[data-loaded="true"]');
    const readRows = () =>
      page.$$eval("#nodes-body tr", (trs) =>
        trs.map((tr) => ({
          node: (tr as HTMLElement).dataset.nodeId,
          sessions: (tr.querySelector("td:nth-of-type(4)")?.textContent ?? "").trim(),
        })),
      );
    assert.deepEqual(
      (await readRows()).map((r) => r.node),
      ["worker-1", "worker-2", "gateway"],
      "workers first, then the gateway",
    );
    // The view refreshes every few seconds from the nodes' lease records, which are renewed
    // independently: wait until the page and the API agree (a stale or wrong view never does).
    await waitFor(
      async () => {
        const [rows, expected] = [await readRows(), await nodesNow()];
        return rows.every((row) => {
          const node = expected.find((n) => n.nodeId === row.node);
          return (
            node && row.sessions === (node.worker ? `${node.sessions} / ${node.capacity}` : "not a worker")
          );
        });
      },
      { what: "the page's sessions per node to match GET /cluster/nodes", timeoutMs: 15000 },
    );
    assert.equal(await page.$eval("#workspace", (el) => (el as HTMLElement).hidden), true);

    await page.type("#placement-ws", ws);
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.getElementById("placement-result")?.textContent);
    assert.equal(
      await text(page, "#placement-result"),
      `Workspace ${ws} is on node ${placement.node} (epoch ${placement.epoch}).`,
    );
    await screenshot(page, "5-admin-cluster");
    assert.ok(created.id);
    await page.close();
  });

  it("a key that is not accepted is said so, in words, next to the field", async () => {
    const page = await browser.newPage();
    await signIn(page, sb.baseUrl, "not-a-key");
    await page.waitForFunction(() => document.getElementById("key-error")?.textContent);
    assert.match(await text(page, "#key-error"), /not accepted/);
    assert.equal(await page.$eval("#sign-in", (el) => (el as HTMLElement).hidden), false);
    await page.close();
  });
});

describe("dashboard: a failed connection shows its reason in words", function () {
  this.timeout(60000);
  let sb: RunningSwitchboard;
  let browser: Browser;

  before(async () => {
    // Two short QRs, then failed/qr_timeout.
    [sb, browser] = await Promise.all([
      startSwitchboard({
        workers: 1,
        name: "e2efail",
        shared: { qr: { firstTtlMs: 1500, refreshMs: 500, max: 2 } },
      }),
      launchBrowser(),
    ]);
  });
  after(async () => {
    await browser?.close();
    await sb?.stop();
  });

  it("qr_timeout → 'The QR code was not scanned in time', with a way to try again", async () => {
    const key = await sb.workspaceKey(`fail${randomBytes(3).toString("hex")}`);
    const page = await browser.newPage();
    await page.setViewport({ width: 1100, height: 760 });
    await signIn(page, sb.baseUrl, key);
    await page.waitForSelector('#connection[data-state="live"]');
    await page.click("#connect-account");
    await page.waitForSelector('#qr-image:not([hidden])[src^="data:image/png"]');
    await page.waitForFunction(() => document.getElementById("qr-error")?.textContent, { timeout: 15000 });
    assert.equal(await text(page, "#qr-error"), "The QR code was not scanned in time");
    assert.equal(await page.$eval("#qr-dialog", (d) => (d as HTMLDialogElement).open), true);
    assert.equal(await page.$eval("#qr-retry", (b) => (b as HTMLElement).hidden), false);
    await screenshot(page, "6-failed-qr-timeout");
    // "Try again" restarts the session: a fresh QR, the error gone.
    await page.click("#qr-retry");
    await page.waitForSelector(
      '#qr-frame[data-state="qr_scanning"] #qr-image:not([hidden])[src^="data:image/png"]',
    );
    assert.equal(await text(page, "#qr-error"), "");
    // Keyboard: Escape closes the dialog and focus goes back to where it was.
    await page.keyboard.press("Escape");
    await page.waitForSelector("#qr-dialog:not([open])");
    // The `open` attribute goes at once; the dialog's "close" event, which moves focus, follows as a task.
    await page.waitForFunction(() => document.activeElement?.id === "connect-account", { timeout: 2000 });
    await page.close();
  });
});
