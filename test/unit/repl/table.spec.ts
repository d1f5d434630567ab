import { strict as assert } from "node:assert";
import { formatRecord, formatTable, terminalLine, terminalText } from "../../../src/repl/table.ts";

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

  // What a tenant or a contact may put in a name or a message: OSC 52 (writes the operator's
  // clipboard), a CSI that clears the screen, BEL, DEL, a C1 CSI, and a NUL.
  const hostile = "a\u001b]52;c;ZWNobyBoaQ==\u0007b\u001b[2J\u007f\u009b31m\u0000z";
  const shown = "a\\u001b]52;c;ZWNobyBoaQ==\\u0007b\\u001b[2J\\u007f\\u009b31m\\u0000z";
  const noControl = (text: string) => assert.ok(!/\p{Cc}/u.test(text), JSON.stringify(text));

  it("control characters in a cell are shown as \\uXXXX escapes, whitespace still collapsed", () => {
    const out = formatTable(
      [
        { title: "name", value: (r: { name: string; tags: string[] }) => r.name },
        { title: "tags", value: (r: { name: string; tags: string[] }) => r.tags },
      ],
      [{ name: hostile + "\t\r\n  end", tags: ["x\u001b[8m", "y"] }],
    );
    noControl(out.replaceAll("\n", ""));
    assert.equal(out.split("\n")[2], `${shown} end  x\\u001b[8m,y`);
    const record = formatRecord([["name", hostile]]);
    noControl(record);
    assert.equal(record, `name  ${shown}`);
  });

  it("a sentence's interpolated values are made safe the same way, its own text is kept", () => {
    assert.equal(terminalText(hostile), shown);
    assert.equal(terminalText("two\nlines\u2028here"), "two lines here");
    assert.equal(terminalLine`account ${"acc_1"} is ${hostile}: no QR`, `account acc_1 is ${shown}: no QR`);
  });
});
