import { strict as assert } from "node:assert";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, recordResult } from "../../../bench/index.ts";

describe("bench/index", () => {
  it("parses --json, --name value and bare flags", () => {
    const a = parseArgs(["--", "extra", "--json", "--accounts", "200", "--quick"]);
    assert.deepEqual(a, { json: true, options: { accounts: "200", quick: true }, positional: ["extra"] });
  });

  it("takes --name=value, whose value may itself start with --", () => {
    const a = parseArgs(["--chromium-args=--single-process --no-zygote", "--sessions=3"]);
    assert.deepEqual(a.options, { "chromium-args": "--single-process --no-zygote", sessions: "3" });
  });

  it("appends each run as one JSON line with commit, date and load average", () => {
    const dir = mkdtempSync(join(tmpdir(), "sb-bench-"));
    try {
      recordResult("demo", { pass: true, p99: 12 }, dir);
      recordResult("demo", { pass: false, p99: 80 }, dir);
      const lines = readFileSync(join(dir, "demo.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      assert.equal(lines.length, 2);
      assert.deepEqual(
        lines.map((l) => l.result.p99),
        [12, 80],
      );
      for (const l of lines) {
        assert.equal(l.bench, "demo");
        assert.match(l.commit, /^[0-9a-f]{7,}$|^unknown$/);
        assert.ok(!Number.isNaN(Date.parse(l.date)));
        assert.equal(l.loadavg.length, 3);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
