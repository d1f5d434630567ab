// The periodic auth state save of a webjs session runs only while its device is linked and its engine
// live. whatsapp-web.js arms it (the strategy's afterAuthReady) right after `ready`, unawaited: a call
// that comes after the engine's stop must arm nothing, since the profile directory is then the next
// engine's of the account. And a page that shows a QR again (the link lost) must not have its profile
// saved over the good state. Real Chromium and whatsapp-web.js against the local stand-in.
// Shared setup and the /proc checks: ./harness.ts.
import { strict as assert } from "node:assert";
import type { ProfileAuthStrategy } from "../../../../src/engines/webjs/auth.ts";
import { ProfileAuthStrategy as Strategy } from "../../../../src/engines/webjs/auth.ts";
import type { WebjsEngine } from "../../../../src/engines/webjs/index.ts";
import { GridFsAuthStore, type AuthStore } from "../../../../src/store/auth-store.ts";
import { testSecrets } from "../../../support/env.ts";
import { waitFor } from "../../../support/wait.ts";
import { webjsHarness } from "./harness.ts";

const SAVE_MS = 200;

describe("webjs engine: periodic auth state saves", function () {
  this.timeout(60000);
  const h = webjsHarness();
  const { makeEngine, standin } = h;

  /** The store of the spec's database, counting the saves that reach it through this wrapper. */
  function counting(): { store: AuthStore; saves: () => number } {
    const store = new GridFsAuthStore(h.db, testSecrets());
    let saves = 0;
    return {
      store: {
        load: (id) => store.load(id),
        save: (id, blob) => {
          saves++;
          return store.save(id, blob);
        },
        delete: (id) => store.delete(id),
        has: (id) => store.has(id),
      },
      saves: () => saves,
    };
  }

  const authOf = (engine: WebjsEngine) => (engine as unknown as { auth: ProfileAuthStrategy }).auth;

  it("whatsapp-web.js's afterAuthReady coming after stop() arms nothing: the next engine's profile is not saved", async () => {
    const s = await standin("qr");
    const first = counting();
    const a = makeEngine(
      { chromiumArgs: s.chromiumArgs, saveIntervalMs: SAVE_MS },
      { authStore: first.store },
    );
    await a.engine.start();
    await a.first("qr");
    s.command({ type: "scan", phoneNumber: "15550006001", pushName: "Ida" });
    await a.first("ready");
    await a.engine.stop();
    const savedByA = first.saves();

    // The account runs again on this node: the next engine restores into the same profile directory.
    const next = counting();
    const b = makeEngine(
      { chromiumArgs: s.chromiumArgs, saveIntervalMs: SAVE_MS },
      { sessionId: a.sessionId, authStore: next.store },
    );
    assert.equal(b.engine.userDataDir, a.engine.userDataDir);
    await b.engine.start();
    await b.first("ready");

    // The library's late call on the stopped engine's strategy (Client.js: emit READY, then this).
    await authOf(a.engine).afterAuthReady();
    const savedByB = next.saves();
    await waitFor(() => next.saves() >= savedByB + 3, {
      what: "three periodic saves of the running engine (the time the stopped one's timer would have had)",
    });
    assert.equal(first.saves(), savedByA, "the stopped engine saved nothing after its stop");
  });

  it("a connected page that shows a QR again (the link lost) stops the periodic saves", async () => {
    const s = await standin("qr");
    const counted = counting();
    const a = makeEngine(
      { chromiumArgs: s.chromiumArgs, saveIntervalMs: SAVE_MS },
      { authStore: counted.store },
    );
    await a.engine.start();
    await a.first("qr");
    s.command({ type: "scan", phoneNumber: "15550006002", pushName: "Jo" });
    await a.first("ready");
    const atReady = counted.saves();
    await waitFor(() => counted.saves() >= atReady + 2, { what: "periodic saves while connected" });

    // WhatsApp Web reloads and comes back unlinked (the browser keeps running).
    a.seen.length = 0;
    const page = (a.engine as unknown as { client: { pupPage: import("puppeteer-core").Page } }).client
      .pupPage;
    await page.evaluate(() => localStorage.removeItem("standin-linked"));
    await page.reload();
    await waitFor(() => a.seen.find((e) => e.event === "qr"), { what: "a QR after the link was lost" });
    assert.deepEqual(a.seen.map((e) => e.event).slice(0, 2), ["disconnected", "qr"]);
    await authOf(a.engine).idle(); // a save begun before the QR
    const atQr = counted.saves();

    // As long as three periods: a strategy of its own on the same profile, saving every period.
    const control = { saves: 0 };
    const witness = new Strategy({
      sessionId: a.sessionId,
      userDataDir: a.engine.userDataDir,
      authStore: {
        load: async () => null,
        save: async () => void control.saves++,
        delete: async () => undefined,
        has: async () => false,
      },
      saveIntervalMs: SAVE_MS,
    });
    try {
      await witness.afterAuthReady();
      await waitFor(() => control.saves >= 3, { what: "three save periods" });
    } finally {
      witness.stopPeriodicSave();
    }
    assert.equal(counted.saves(), atQr, "nothing saved while the page shows a QR");
    assert.equal(a.engine.status, "qr");
  });
});
