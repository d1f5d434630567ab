// The webjs profile archive (auth.ts): a blob tar cannot read, or a tar killed mid-extract, rejects the
// unpack; the write of the rest of the blob into the dead tar (EPIPE) must not end the process.
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  packProfile,
  ProfileAuthStrategy,
  ProfileRestoreError,
  unpackProfile,
} from "../../../src/engines/webjs/auth.ts";
import type { AuthStore } from "../../../src/store/auth-store.ts";
import { killSessionProcesses, processesMentioning } from "../../../src/engines/webjs/chromium.ts";
import { waitFor } from "../../support/wait.ts";

describe("engines/webjs/auth: unpacking a profile", () => {
  let root: string;

  before(() => {
    root = mkdtempSync(join(tmpdir(), "switchboard-webjs-archive-"));
  });

  after(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it("several MB that are not a gzipped tar reject the unpack; the process lives on", async () => {
    // More than a pipe holds: tar exits on the first bytes while the rest is still being written.
    const dir = join(root, "random");
    await assert.rejects(
      unpackProfile(dir, randomBytes(4 * 1024 * 1024)),
      /tar exited 2: .*not in gzip format/s,
    );
    // The process is still here to run more: the next unpack of a real profile works.
    const seed = join(root, "seed-small");
    mkdirSync(join(seed, "Default", "Local Storage"), { recursive: true });
    writeFileSync(join(seed, "Default", "Local Storage", "MARKER"), "kept");
    await unpackProfile(join(root, "after"), (await packProfile(seed))!);
  });

  it("a tar killed mid-extract (a stop killing the session's processes by its profile path) rejects the unpack", async () => {
    const seed = join(root, "seed-big");
    mkdirSync(join(seed, "Default", "IndexedDB"), { recursive: true });
    writeFileSync(join(seed, "Default", "IndexedDB", "big"), randomBytes(24 * 1024 * 1024)); // incompressible
    const blob = (await packProfile(seed))!;
    const dir = join(root, "killed");
    const unpacking = unpackProfile(dir, blob);
    const outcome = unpacking.then(
      () => "unpacked",
      (err: Error) => err.message,
    );
    // tar names the profile on its command line (-C <dir>), as Chromium's processes do.
    await waitFor(() => processesMentioning(dir).length > 0, { what: "tar running", intervalMs: 1 });
    await killSessionProcesses(dir);
    assert.match(await outcome, /tar exited null/);
  });

  it("a restore this host cannot write fails (the device stays linked); a blob that is no profile starts a new device", async () => {
    const seed = join(root, "seed-restore");
    mkdirSync(join(seed, "Default", "Local Storage"), { recursive: true });
    writeFileSync(join(seed, "Default", "Local Storage", "MARKER"), "kept");
    const blobs = new Map<string, Buffer>([
      ["linked", (await packProfile(seed))!],
      ["other-engine", Buffer.from(JSON.stringify({ engine: "simulated", phoneNumber: "1555" }))],
    ]);
    const store = { load: async (id: string) => blobs.get(id) ?? null } as unknown as AuthStore;
    const strategy = (sessionId: string, userDataDir: string) =>
      new ProfileAuthStrategy({ sessionId, userDataDir, authStore: store, saveIntervalMs: 300000 });

    // A file where the profile's `Default` directory goes: tar cannot write it (as with a full disk).
    const blocked = join(root, "blocked");
    mkdirSync(blocked, { recursive: true });
    writeFileSync(join(blocked, "Default"), "not a directory");
    await assert.rejects(strategy("linked", blocked).restore(), (err: unknown) => {
      assert.ok(err instanceof ProfileRestoreError, String(err));
      assert.match(err.message, /tar exited/);
      return true;
    });

    const other = strategy("other-engine", join(root, "other"));
    assert.equal(await other.restore(), false, "not a webjs profile: a new device");
    const fine = strategy("linked", join(root, "fine"));
    assert.equal(await fine.restore(), true);
  });
});
