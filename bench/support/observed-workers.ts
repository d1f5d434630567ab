// The start every cluster bench with simulated workers shares: nats-server and FerretDB, worker
// processes, and an observer broker here (accounts service + event recorder), ready once every worker
// is live, available and would broadcast its events to the observer.
import type { ServiceBroker } from "moleculer";
import AccountsService from "../../services/accounts.service.ts";
import { placementOf } from "../../src/placement/kv.ts";
import type { ProcessCluster } from "../../test/support/process-cluster.ts";
import { waitFor } from "../../test/support/wait.ts";
import { knowsRecorder, recorder, type Recorded } from "../../test/integration/placement/failover-support.ts";

export async function startObservedWorkers(
  pc: ProcessCluster,
  workers: string[],
  observerId: string,
  log: (...a: unknown[]) => void,
): Promise<{ obs: ServiceBroker; events: Recorded[] }> {
  await pc.startServers();
  log(`starting ${workers.length} workers`);
  await Promise.all(workers.map((id) => pc.startWorker(id)));
  const events: Recorded[] = [];
  const obs = await pc.observer(observerId, [AccountsService, recorder(events)]);
  await waitFor(
    async () =>
      placementOf(obs)!.mirror.liveNodes().size === workers.length &&
      workers.every((w) => obs.registry.nodes.get(w)?.available) &&
      (await Promise.all(workers.map((w) => knowsRecorder(obs, w)))).every(Boolean),
    { what: "workers to be live and to know the observer", timeoutMs: 60000, intervalMs: 250 },
  );
  return { obs, events };
}
