// The `webjs` engine: whatsapp-web.js on the system Chromium (DESIGN.md, "Engines").
//   engine.ts   lifecycle: restore → launch → watchdog, crash restarts, stop/logout
//   client.ts   a whatsapp-web.js Client on our browser, its events wired to the engine
//   events.ts   whatsapp-web.js events and errors → the engine contract (pure)
//   auth.ts     our auth strategy: browser profile subset ⇄ AuthStore blob
//   chromium.ts launching Chromium in its own process group; finding and killing its processes
export { WebjsEngine, createWebjsEngine, type WebjsEngineOptions, type WebjsTuning } from "./engine.ts";
