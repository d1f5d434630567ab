// The shared engine contract (test/contract/engine-contract.ts) against the webjs engine, with real
// Chromium and whatsapp-web.js: once as it runs here (WhatsApp Web unreachable), once against the
// local stand-in of WhatsApp Web that lets the library's QR and pairing-code path run. What needs a
// phone (scan, restore, messages) cannot run here.
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { strict as assert } from "node:assert";
import { processesMentioning } from "../../../src/engines/webjs/chromium.ts";
import { createWebjsEngine } from "../../../src/engines/webjs/index.ts";
import type { WebjsTuning } from "../../../src/engines/webjs/index.ts";
import { engineContractSuite } from "../../contract/engine-contract.ts";
import { testEnv } from "../../support/env.ts";
import { startWhatsappStandin, type Standin } from "../../support/whatsapp-standin.ts";

describe("webjs engine contract", () => {
  // Filled in before() (the suite reads engineOptions when it creates each engine).
  const offline = { chromiumPath: "/usr/bin/chromium", profileDir: "" };
  const webjs: WebjsTuning = { destroyTimeoutMs: 1000 };
  const withStandin = { chromiumPath: "/usr/bin/chromium", profileDir: "", webjs };
  let standin: Standin;

  before(async () => {
    offline.profileDir = mkdtempSync(join(testEnv.dataDir, "webjs-contract-"));
    withStandin.profileDir = mkdtempSync(join(testEnv.dataDir, "webjs-contract-standin-"));
    standin = await startWhatsappStandin({ mode: "qr" });
    webjs.chromiumArgs = standin.chromiumArgs;
  });

  after(async () => {
    await standin.close();
    for (const dir of [offline.profileDir, withStandin.profileDir]) {
      assert.deepEqual(processesMentioning(dir), [], `no Chromium of ${dir} outlives the suite`);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  engineContractSuite("webjs", createWebjsEngine, {
    showsQr: false,
    expectStartFailure: "whatsapp_unreachable",
    engineOptions: offline,
  });

  engineContractSuite("webjs_standin", createWebjsEngine, {
    showsQr: true,
    engineOptions: withStandin,
  });
});
