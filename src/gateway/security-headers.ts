// Headers every answer of the gateway carries (REST, health, metrics, dashboard, docs, Socket.IO
// polling): nothing of ours may be framed, sniffed into another type, leak its URL as a referrer, or
// load code from anywhere but the gateway itself. QR codes are `data:` PNGs, hence img-src.
import { createHash } from "node:crypto";
import type { IncomingMessage, Server, ServerResponse } from "node:http";

export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "Content-Security-Policy": CONTENT_SECURITY_POLICY,
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
};

/** Sets SECURITY_HEADERS on every answer of `server`, before any other request listener writes. */
export function addSecurityHeaders(server: Server): void {
  server.prependListener("request", (_req: IncomingMessage, res: ServerResponse) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
  });
}

/** The policy for a page whose only inline code is the `<style>` element `css` (allowed by its hash). */
export function policyAllowingStyle(css: string): string {
  const hash = createHash("sha256").update(css).digest("base64");
  return `${CONTENT_SECURITY_POLICY}; style-src 'self' 'sha256-${hash}'`;
}
