// A drain right after a device was linked: Chromium commits the page's Local Storage to disk seconds
// after the page wrote it, so a copy of the profile taken while the browser runs may not hold the link
// yet. A hand-off must close the browser cleanly before it saves (Chromium commits on close), or the
// next owner shows a QR for a number that was just scanned. Real worker processes, real Chromium and
// whatsapp-web.js against the local WhatsApp Web stand-in.
import { strict as assert } from "node:assert";
import type { AccountView } from "../../../src/accounts/types.ts";
import { waitFor } from "../../support/wait.ts";
import { startWhatsappStandin, type Standin } from "../../support/whatsapp-standin.ts";
import { waitAllConnected, workspacesOn } from "../placement/failover-support.ts";
import { startWebjsCluster, statusOf, type WebjsCluster } from "./webjs-cluster.ts";

describe("webjs drain: a session linked a moment ago moves without a QR", function () {
  this.timeout(120000);
  let c: WebjsCluster;
  let standin: Standin;

  beforeEach(async function () {
    this.timeout(120000);
    standin = await startWhatsappStandin({ mode: "qr" });
    c = await startWebjsCluster(standin, ["w1", "w2"], { LEASE_RENEW_MS: "1000", LEASE_TTL_MS: "5000" });
  });
  afterEach(async function () {
    this.timeout(60000);
    await c?.pc.stop();
    await standin?.close();
  });

  it("drained within a second of its link, it connects on the other worker from its saved profile", async () => {
    const [ws] = await workspacesOn(c.obs, "w1", 1, "webjs");
    const account = (await c.obs.call("accounts.create", {
      workspaceId: ws,
      engine: "webjs",
    })) as AccountView;
    const phoneNumber = "491700000077";
    await waitFor(
      () =>
        standin.commandTo({ type: "scan", phoneNumber, pushName: "drained" }, { phoneNumber: "", limit: 1 }),
      { what: "the page waiting for its scan", timeoutMs: 40000, intervalMs: 100 },
    );
    await waitFor(() => statusOf(c.events, account.id) === "connected", {
      what: "connected on w1",
      timeoutMs: 40000,
    });
    const mark = c.events.length;
    const drained = (await c.obs.call("cluster.drain", { nodeId: "w1" }, { timeout: 60000 })) as {
      moved: number;
    };
    assert.equal(drained.moved, 1, JSON.stringify(drained));
    await waitAllConnected(c.obs, () => ["w2"], [account.id], "the session connected on w2", 60000, "w1");
    const qrs = c.events
      .slice(mark)
      .filter((e) => e.event === "account.qr" && e.payload.accountId === account.id);
    assert.deepEqual(qrs, [], "the moved session asked for a QR");
    assert.equal(standin.browsersOf(phoneNumber), 1, "linked once, on w2");
  });
});
