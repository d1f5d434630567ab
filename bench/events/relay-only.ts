// Phase 4 of bench/events.ts: the relay alone, without the database in the path. This process
// broadcasts account.status events (stamped when sent) at a fixed rate; gateway → sockets as in
// production. The bus observer and the sockets' loss count leave these events out (`benchSentAt`).
import type { ServiceBroker } from "moleculer";
import { summarize } from "../support/stats.ts";
import { now, waitUntil, type SocketClients } from "./receipts.ts";

export async function relayOnlyPhase(
  observer: ServiceBroker,
  sockets: SocketClients,
  workspaces: string[],
  accounts: number,
  rate: number,
  seconds: number,
) {
  const count = rate * seconds;
  const socketsOf = new Map<string, number>();
  for (const s of sockets.records) socketsOf.set(s.workspaceId, (socketsOf.get(s.workspaceId) ?? 0) + 1);
  let expected = 0;
  const started = now();
  for (let n = 0; n < count; n++) {
    const workspaceId = workspaces[n % workspaces.length];
    expected += socketsOf.get(workspaceId) ?? 0;
    void observer.broadcast("account.status", {
      accountId: `syn_${n % accounts}`,
      workspaceId,
      sessionId: "synthetic",
      status: "connected",
      previousStatus: "connected",
      node: "bench",
      epoch: 0,
      at: new Date().toISOString(),
      n,
      benchSentAt: now(),
    });
    // Pace: sleep whenever we are ahead of the schedule.
    const ahead = started + ((n + 1) / rate) * 1000 - now();
    if (ahead > 1) await new Promise((r) => setTimeout(r, ahead));
  }
  const sentSeconds = (now() - started) / 1000;
  const synthetic = sockets.synthetic;
  await waitUntil("the synthetic events on every socket", () => synthetic.length >= expected, 30000);
  const seen = new Set<string>();
  let duplicates = 0;
  for (const r of synthetic) {
    const k = `${r.socket}|${r.key}`;
    if (seen.has(k)) duplicates++;
    seen.add(k);
  }
  return {
    sent: count,
    rate,
    expectedDeliveries: expected,
    delivered: synthetic.length,
    missing: expected - seen.size,
    duplicates,
    latencyMs: summarize(synthetic.map((r) => r.latency)),
    deliveriesPerSecond: Math.round(synthetic.length / sentSeconds),
  };
}
