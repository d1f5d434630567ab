#!/usr/bin/env node
// One idempotent step, run by `npm start` and `npm test`: makes sure the npm dependencies, the Debian
// packages `nats-server` and `chromium`, and our FerretDB binary (.cache/bin/ferretdb) are present.
// Plain JavaScript on purpose: it must run before node_modules (and tsx, and Node 22) exist.
// NATS_URL / MONGO_URL in the environment mean "use these servers": their binaries are then not needed.
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cache = join(root, ".cache");
const started = Date.now();
const FERRETDB_MODULE = "github.com/FerretDB/FerretDB@v1.24.2";
const say = (msg) => console.log(`[provision] ${msg}`);

function fail(msg) {
  console.error(`[provision] FAILED: ${msg}`);
  process.exit(1);
}

function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { stdio: "inherit", cwd: root, ...opts });
  if (res.error) fail(`${cmd} ${args.join(" ")}: ${res.error.message}`);
  if (res.status !== 0) fail(`${cmd} ${args.join(" ")} exited with ${res.status}`);
}

function hasCommand(cmd) {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

function fingerprint(files) {
  const h = createHash("sha256");
  for (const f of files) h.update(existsSync(f) ? readFileSync(f) : "");
  return h.digest("hex");
}

// 1. npm dependencies: reinstall only when package.json / package-lock.json changed since the last install.
function ensureNpm() {
  const stamp = join(cache, "npm.stamp");
  const want = fingerprint([join(root, "package.json"), join(root, "package-lock.json")]);
  const nodeBin = join(root, "node_modules", ".bin", "node");
  if (existsSync(stamp) && readFileSync(stamp, "utf8") === want && existsSync(nodeBin)) return;
  say("installing npm dependencies (Node 22, moleculer, whatsapp-web.js, …)");
  const args = existsSync(join(root, "package-lock.json")) ? ["ci"] : ["install"];
  run("npm", [...args, "--no-audit", "--no-fund"], {
    env: { ...process.env, PUPPETEER_SKIP_DOWNLOAD: "true" },
  });
  mkdirSync(cache, { recursive: true });
  writeFileSync(stamp, want);
}

// 2. Debian packages. Installing needs root and apt; anything else names what is missing.
function ensureDebian() {
  const missing = [];
  if (!process.env.NATS_URL && !hasCommand("nats-server")) missing.push("nats-server");
  const chromium = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
  if (!existsSync(chromium)) missing.push("chromium");
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0 || !hasCommand("apt-get")) {
    fail(`missing ${missing.join(", ")}; install them (Debian: apt-get install ${missing.join(" ")})`);
  }
  say(`installing Debian packages: ${missing.join(", ")} (apt-get; a minute or two)`);
  run("apt-get", ["update", "-qq"]);
  run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], {
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
}

// 3. FerretDB: built once from the Go module proxy into .cache/bin, rebuilt when tools/ferretdb changes.
// Its source is copied out of the module cache and patched first (tools/ferretdb/patches.mjs: lookups
// by `_id` through the `_id` index, writes queued in turn); the build uses that copy through a
// `replace` directive.
async function ensureFerret() {
  if (process.env.MONGO_URL) return;
  const src = join(root, "tools", "ferretdb");
  const bin = join(cache, "bin", "ferretdb");
  const stamp = join(cache, "ferretdb.stamp");
  const want = fingerprint(["main.go", "go.mod", "go.sum", "patches.mjs"].map((f) => join(src, f)));
  if (existsSync(bin) && existsSync(stamp) && readFileSync(stamp, "utf8") === want) return;
  if (!hasCommand("go")) fail("the Go toolchain is needed once to build FerretDB (the MongoDB-wire server)");
  say("building FerretDB 1.24.2 (SQLite backend, patched) from the Go module proxy; once, about a minute");
  const goEnv = { ...process.env, CGO_ENABLED: "0" };
  const download = spawnSync("go", ["mod", "download", "-json", FERRETDB_MODULE], { cwd: src, env: goEnv });
  const moduleDir = download.status === 0 ? JSON.parse(download.stdout.toString()).Dir : undefined;
  if (!moduleDir) fail(`go mod download ${FERRETDB_MODULE}: ${download.stderr?.toString().trim()}`);
  const patched = join(cache, "ferretdb-src");
  const build = join(cache, "ferretdb-build");
  for (const dir of [patched, build]) rmSync(dir, { recursive: true, force: true });
  // The module cache is read-only: the copy is made writable to be patched.
  cpSync(moduleDir, patched, { recursive: true });
  run("chmod", ["-R", "u+w", patched]);
  const { FERRETDB_PATCHES } = await import(pathToFileURL(join(src, "patches.mjs")).href);
  for (const patch of FERRETDB_PATCHES) {
    const file = join(patched, patch.file);
    const text = readFileSync(file, "utf8");
    const found = text.split(patch.find).length - 1;
    if (found !== patch.count)
      fail(`patching ${patch.file}: expected ${patch.count} × "${patch.find}", found ${found}`);
    writeFileSync(file, text.replaceAll(patch.find, patch.replace) + (patch.append ?? ""));
  }
  mkdirSync(build, { recursive: true });
  for (const f of ["main.go", "go.sum"]) cpSync(join(src, f), join(build, f));
  const goMod = readFileSync(join(src, "go.mod"), "utf8");
  writeFileSync(
    join(build, "go.mod"),
    `${goMod}\nreplace ${FERRETDB_MODULE.split("@")[0]} => ../ferretdb-src\n`,
  );
  mkdirSync(dirname(bin), { recursive: true });
  run("go", ["build", "-o", bin, "."], { cwd: build, env: goEnv });
  if (!statSync(bin).isFile()) fail(`go build produced no ${bin}`);
  writeFileSync(stamp, want);
}

ensureNpm();
ensureDebian();
await ensureFerret();
try {
  const v = execFileSync(join(root, "node_modules", ".bin", "node"), ["-v"])
    .toString()
    .trim();
  say(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s (node ${v})`);
} catch (err) {
  fail(`node_modules/.bin/node does not run: ${err.message}`);
}
