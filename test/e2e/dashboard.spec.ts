// The dashboard in real headless Chromium against a real cluster (gateway + two workers, simulated
// engine): a person pastes a key, connects an account, sees the live QR, "scans" it and sees the
// account connected; a failure reads as words; the admin key shows the cluster. Each step leaves a
// screenshot under artifacts/e2e/.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
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

const text = (page: Page, selector: string) =>
  page.$eval(selector, (el) => (el.textContent ?? "").trim().replace(/\s+/g, " "));

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
