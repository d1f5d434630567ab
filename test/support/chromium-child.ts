// A Node process that launches one session's Chromium and then idles, for tests that kill it: prints
// `{"pid": <browser group leader>}` once the browser's DevTools endpoint is up.
import { launchChromium } from "../../src/engines/webjs/chromium.ts";

const [executablePath, userDataDir] = process.argv.slice(2);
const browser = await launchChromium({ executablePath, userDataDir });
process.stdout.write(`${JSON.stringify({ pid: browser.pid })}\n`);
setInterval(() => undefined, 60_000);
