// A small HTML page rendering the gateway's OpenAPI document (src/gateway/openapi.ts), rendered on the
// server: no script, no CDN.
import type { JsonSchema } from "./openapi.ts";

function esc(s: unknown): string {
  return String(s).replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );
}

/** The docs page's only inline code (the gateway's CSP allows it by its hash). */
export const DOCS_CSS = `body{font:14px/1.45 system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
code{font:12px ui-monospace,monospace}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
.op{border-top:1px solid #eee;padding:.3em 0}.m{display:inline-block;min-width:4.5em;font-size:12px;color:#fff;border-radius:3px;padding:1px 4px;text-align:center}
.get{background:#2a7ae2}.post{background:#2c9a4b}.put{background:#b7791f}.delete{background:#c0392b}.auth{font-size:12px;background:#eee;border-radius:3px;padding:0 4px}`;

/** What the docs page reads of a generated operation. */
interface DocOperation {
  summary: string;
  tags: string[];
  "x-auth"?: string;
  parameters: { name: string; in: string; required?: boolean; schema: unknown; description?: string }[];
  requestBody?: {
    content?: Record<
      string,
      { schema?: { properties: Record<string, { description?: string }>; required: string[] } }
    >;
  };
  responses: Record<string, { description: string }>;
}

/** A readable, self-contained page of the document (rendered on the server: no script, no CDN). */
export function renderDocsHtml(doc: JsonSchema): string {
  const info = doc.info as { title: string; version: string; description: string };
  const paths = doc.paths as Record<string, Record<string, DocOperation>>;
  const byTag = new Map<string, string[]>();
  for (const [path, ops] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const params = op.parameters
        .map(
          (p) =>
            `<tr><td><code>${esc(p.name)}</code></td><td>${esc(p.in)}</td><td>${p.required ? "yes" : ""}</td>` +
            `<td><code>${esc(JSON.stringify(p.schema))}</code></td><td>${esc(p.description ?? "")}</td></tr>`,
        )
        .join("");
      const body = op.requestBody?.content?.["application/json"]?.schema;
      const bodyRows = body
        ? Object.entries(body.properties)
            .map(
              ([name, s]) =>
                `<tr><td><code>${esc(name)}</code></td><td>body</td><td>${
                  body.required.includes(name) ? "yes" : ""
                }</td><td><code>${esc(JSON.stringify({ ...s, description: undefined }))}</code></td><td>${esc(
                  s.description ?? "",
                )}</td></tr>`,
            )
            .join("")
        : "";
      const responses = Object.entries(op.responses)
        .map(([code, r]) => `<li><b>${esc(code)}</b> ${esc(r.description)}</li>`)
        .join("");
      const html =
        `<section class="op"><h3><span class="m ${esc(method)}">${esc(method.toUpperCase())}</span> ` +
        `<code>${esc(path)}</code></h3><p>${esc(op.summary)}` +
        (op["x-auth"] ? ` <span class="auth">${esc(op["x-auth"])} key</span>` : "") +
        `</p>` +
        (params || bodyRows
          ? `<table><tr><th>name</th><th>in</th><th>required</th><th>schema</th><th></th></tr>${params}${bodyRows}</table>`
          : "") +
        `<ul>${responses}</ul></section>`;
      const tag = op.tags[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag)!.push(html);
    }
  }
  const sections = [...byTag.entries()].map(([tag, ops]) => `<h2>${esc(tag)}</h2>${ops.join("")}`).join("");
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(info.title)}</title>
<style>${DOCS_CSS}</style>
</head><body><h1>${esc(info.title)} <small>${esc(info.version)}</small></h1><p>${esc(info.description)}</p>
<p>Machine-readable: <a href="/api/openapi.json">/api/openapi.json</a> (OpenAPI 3.1).</p>${sections}</body></html>`;
}
