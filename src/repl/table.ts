// Plain-text tables for the operator's console: fixed-width columns, no colours or box characters, so
// the output reads the same in a terminal, a log file and a test.

export interface Column<Row> {
  /** Header text. */
  title: string;
  /** Cell text of a row; undefined/null print as "-". */
  value: (row: Row) => unknown;
  /** Right-align (numbers). @default false */
  right?: boolean;
}

/**
 * Text from data (account and chat names, message text, reasons, errors) as one printable line. It
 * reaches the operator's terminal, where an ESC, BEL or CSI sequence from a tenant or a contact would
 * act (clear the screen, write the clipboard with OSC 52, retitle the window). Whitespace runs become
 * one space; every other control character (C0, DEL, C1) is shown as its `\uXXXX` escape, e.g. ESC as
 * the six characters `\u001b`, so the operator sees that it was there and nothing acts on it.
 */
export function terminalText(value: unknown): string {
  return String(value)
    .replace(/\s+/g, " ")
    .replace(/\p{Cc}/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** A sentence for the console whose every interpolated value goes through terminalText. */
export function terminalLine(parts: TemplateStringsArray, ...values: unknown[]): string {
  return parts.reduce(
    (line, part, i) => line + part + (i < values.length ? terminalText(values[i]) : ""),
    "",
  );
}

function cellText(value: unknown): string {
  if (value === undefined || value === null || value === "") return "-";
  if (Array.isArray(value)) return value.length ? terminalText(value.join(",")) : "-";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (value instanceof Date) return value.toISOString();
  return terminalText(value);
}

/** Renders rows as a table with a header and a dashed rule; an empty list prints `empty`. */
export function formatTable<Row>(columns: Column<Row>[], rows: Row[], empty = "(none)"): string {
  const cells = rows.map((row) => columns.map((c) => cellText(c.value(row))));
  const widths = columns.map((c, i) => Math.max(c.title.length, ...cells.map((r) => r[i].length)));
  const line = (texts: string[]) =>
    texts
      .map((t, i) => (columns[i].right ? t.padStart(widths[i]) : t.padEnd(widths[i])))
      .join("  ")
      .trimEnd();
  const out = [line(columns.map((c) => c.title)), line(widths.map((w) => "-".repeat(w)))];
  if (!rows.length) out.push(empty);
  for (const r of cells) out.push(line(r));
  return out.join("\n");
}

/** Key/value lines for a single record. */
export function formatRecord(fields: [string, unknown][]): string {
  const width = Math.max(...fields.map(([k]) => k.length));
  return fields.map(([k, v]) => `${k.padEnd(width)}  ${cellText(v)}`).join("\n");
}
