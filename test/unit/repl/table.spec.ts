import { strict as assert } from "node:assert";
import { formatRecord, formatTable } from "../../../src/repl/table.ts";

describe("repl/table", () => {
  const columns = [
    { title: "node", value: (r: { n: string; s?: number; d?: boolean; l?: string[] }) => r.n },
    { title: "sessions", value: (r: { s?: number }) => r.s, right: true },
    { title: "draining", value: (r: { d?: boolean }) => r.d },
    { title: "services", value: (r: { l?: string[] }) => r.l },
  ];

  it("aligns columns under a header and a rule, numbers to the right", () => {
    const out = formatTable(columns, [
      { n: "worker-1", s: 12, d: false, l: ["session", "accounts"] },
      { n: "w2", s: 3, d: true, l: [] },
    ]);
    assert.equal(
      out,
      [
        "node      sessions  draining  services",
        "--------  --------  --------  ----------------",
        "worker-1        12  no        session,accounts",
        "w2               3  yes       -",
      ].join("\n"),
    );
  });

  it("prints the empty text under the header of an empty table", () => {
    assert.match(formatTable(columns, [], "(no live workers)"), /\n\(no live workers\)$/);
  });

  it("formats a record as aligned key/value lines, missing values as '-'", () => {
    assert.equal(
      formatRecord([
        ["workspace", "ws1"],
        ["node", null],
        ["epoch", 3],
      ]),
      "workspace  ws1\nnode       -\nepoch      3",
    );
  });
});
