// The old design, rebuilt for the routing bench's baseline (DESIGN.md, first section): plain HTTP
// "instance" servers on fixed ports, each holding the QR codes of its accounts in memory, and an HTTP
// proxy that reads the account from MongoDB and forwards to port[workspaceId % 4]. Run as a child
// process:
//   LEGACY_ROLE=instances LEGACY_PORTS=p0,p1,p2,p3 LEGACY_DATA=file.json   (data: [{id, workspaceId, qr}])
//   LEGACY_ROLE=proxy LEGACY_PORT=p MONGO_URL=… LEGACY_PORTS=p0,p1,p2,p3
// Prints `ready legacy-<role>` once listening.
import { readFileSync } from "node:fs";
import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from "node:http";
import { MongoClient } from "mongodb";

export const LEGACY_COLLECTION = "legacy_accounts";

interface LegacyAccount {
  id: string;
  workspaceId: string;
  qr: { qr: string; dataUrl: string; seq: number; expiresAt: number };
}

const QR_PATH = /^\/accounts\/([A-Za-z0-9_-]{1,64})\/qr$/;
const ports = (process.env.LEGACY_PORTS ?? "").split(",").map(Number);

function json(res: ServerResponse, status: number, body: unknown) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

async function instances(): Promise<void> {
  const data = JSON.parse(readFileSync(process.env.LEGACY_DATA!, "utf8")) as LegacyAccount[];
  await Promise.all(
    ports.map(
      (port, i) =>
        new Promise<void>((resolve) => {
          // Each instance holds the sessions of the workspaces with workspaceId % 4 === i.
          const qrs = new Map(data.filter((a) => Number(a.workspaceId) % 4 === i).map((a) => [a.id, a.qr]));
          createServer((req, res) => {
            const m = QR_PATH.exec(req.url ?? "");
            const qr = m ? qrs.get(m[1]) : undefined;
            if (qr) json(res, 200, qr);
            else json(res, 404, { error: "not found" });
          }).listen(port, "127.0.0.1", () => resolve());
        }),
    ),
  );
}

async function proxy(): Promise<void> {
  const client = await MongoClient.connect(process.env.MONGO_URL!);
  const accounts = client.db().collection<{ _id: string; workspaceId: string }>(LEGACY_COLLECTION);
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    try {
      const m = QR_PATH.exec(req.url ?? "");
      if (!m) return json(res, 404, { error: "not found" });
      // As the old proxy did: find the account (and so its workspace) in MongoDB …
      const account = await accounts.findOne({ _id: m[1] });
      if (!account) return json(res, 404, { error: "not found" });
      // … then the hard-coded routing rule.
      const port = ports[Number(account.workspaceId) % 4];
      const upstream = request({ host: "127.0.0.1", port, path: req.url, agent }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      upstream.on("error", () => json(res, 502, { error: "instance unreachable" }));
      upstream.end();
    } catch {
      json(res, 500, { error: "proxy error" });
    }
  });
  await new Promise<void>((resolve) => server.listen(Number(process.env.LEGACY_PORT), "127.0.0.1", resolve));
}

if (process.env.LEGACY_ROLE) {
  const role = process.env.LEGACY_ROLE;
  await (role === "proxy" ? proxy() : instances());
  process.stdout.write(`ready legacy-${role}\n`);
  process.on("SIGTERM", () => process.exit(0));
}
