// `npm run bench -- sends [--json] [--accounts 100] [--sends 1000] [--concurrency 50] [--workers 3]`
//
// Sends through the cluster: nats-server, FerretDB, `workers` worker processes at the default timings
// (simulated engine, pacing off: SEND_MIN_GAP_MS=0) and an observer broker here calling
// `accounts.sendMessage` as the gateway does. `accounts` connected accounts (4 per workspace); `sends`
// text messages with an idempotency key each, spread over the accounts, `concurrency` in flight.
// Two phases on one cluster:
//   steady   — no failure;
//   failover — the same load, and the worker owning the most accounts is SIGKILLed once a third of
//              the sends are answered; a request that fails with its owner is made again (same key)
//              until a survivor answers.
// Per phase: accepted → answered latency (p50/p99, the answer is `sent` unless the owner died
// mid-send), throughput, answers by status, and duplicates: recipients with more than one message
// (each send has a recipient of its own), which must be 0.
import type { ServiceBroker } from "moleculer";
import { MongoClient } from "mongodb";
import type { AccountView } from "../src/accounts/types.ts";
import type { SendResult } from "../src/messages/types.ts";
import { ProcessCluster } from "../test/support/process-cluster.ts";
import { waitFor } from "../test/support/wait.ts";
import { connectedAccounts, localOf, type Recorded } from "../test/integration/placement/failover-support.ts";
import type { BenchArgs, BenchResult } from "./index.ts";
import { numberOption } from "./support/options.ts";
import { startObservedWorkers } from "./support/observed-workers.ts";
import { inParallel, summarize } from "./support/stats.ts";

const log = (...a: unknown[]) => console.error("[bench sends]", ...a);

interface Phase {
  sends: number;
  seconds: number;
  perSecond: number;
  latencyMs: ReturnType<typeof summarize>;
  answers: Record<string, number>;
  retried: number;
  duplicates: number;
  killed?: { node: string; accounts: number; afterAnswers: number };
}

export async function run(args?: BenchArgs): Promise<BenchResult> {
  const accountsWanted = numberOption(args, "accounts", 100);
  const sends = numberOption(args, "sends", 1000);
  const concurrency = numberOption(args, "concurrency", 50);
  const workers = Array.from({ length: numberOption(args, "workers", 3) }, (_, i) => `w${i + 1}`);
  const pc = new ProcessCluster({ SEND_MIN_GAP_MS: "0", SESSION_CAPACITY: "200" }, {});
  let obs: ServiceBroker | undefined;
  let mongo: MongoClient | undefined;
  try {
    let events: Recorded[];
    ({ obs, events } = await startObservedWorkers(pc, workers, "bench-sends", log));
    const o = obs;
    const workspaces = Array.from({ length: Math.ceil(accountsWanted / 4) }, (_, i) => `sends-${i}`);
    log(`connecting ${workspaces.length * 4} accounts`);
    const accounts = await connectedAccounts(o, events, workspaces, 4);
    mongo = await MongoClient.connect(pc.mongoUrl);
    const statuses = mongo.db().collection("message_status");

    async function phase(name: string, killAt?: number): Promise<Phase> {
      const latencies: number[] = [];
      const answers: Record<string, number> = {};
      let retried = 0;
      let answered = 0;
      let killed: Phase["killed"];
      const recipient = (i: number) => `49${name === "steady" ? "15" : "16"}${String(i).padStart(8, "0")}`;
      const started = Date.now();
      await inParallel(
        Array.from({ length: sends }, (_, i) => i),
        concurrency,
        async (i) => {
          const account: AccountView = accounts[i % accounts.length];
          const params = {
            workspaceId: account.workspaceId,
            accountId: account.id,
            to: recipient(i),
            text: `${name} ${i}`,
            idempotencyKey: `${name}-${i}`,
          };
          const t0 = Date.now();
          const result = await waitFor(
            async () => {
              try {
                return (await o.call("accounts.sendMessage", params, { timeout: 10000 })) as SendResult;
              } catch (err) {
                retried++;
                throw err;
              }
            },
            { what: `send ${i} answered`, timeoutMs: 120000, intervalMs: 200 },
          );
          latencies.push(Date.now() - t0);
          answers[result.status] = (answers[result.status] ?? 0) + 1;
          answered++;
          if (answered % 200 === 0) log(`${name}: ${answered}/${sends} answered`);
          if (killAt !== undefined && answered === killAt && !killed) {
            const perNode = await Promise.all(
              [...pc.workers.keys()].map(async (w) => ({ w, n: ((await localOf(o, w, 5000)) ?? []).length })),
            );
            const victim = perNode.reduce((a, b) => (b.n > a.n ? b : a));
            killed = { node: victim.w, accounts: victim.n, afterAnswers: answered };
            log(`${name}: SIGKILL ${victim.w} (${victim.n} sessions) after ${answered} answers`);
            pc.kill(victim.w, "SIGKILL");
          }
        },
      );
      const seconds = (Date.now() - started) / 1000;
      const tos = Array.from({ length: sends }, (_, i) => recipient(i));
      const perRecipient = new Map<string, number>();
      for (const d of await statuses.find({ to: { $in: tos } }, { projection: { to: 1 } }).toArray())
        perRecipient.set(d.to as string, (perRecipient.get(d.to as string) ?? 0) + 1);
      const duplicates = [...perRecipient.values()].filter((n) => n > 1).length;
      log(`${name}: ${sends} answered in ${seconds.toFixed(1)} s, ${duplicates} duplicates`);
      return {
        sends,
        seconds: Math.round(seconds * 100) / 100,
        perSecond: Math.round(sends / seconds),
        latencyMs: summarize(latencies),
        answers,
        retried,
        duplicates,
        ...(killed ? { killed } : {}),
      };
    }

    const steady = await phase("steady");
    const failover = await phase("failover", Math.floor(sends / 3));
    return {
      bench: "sends",
      setup: { workers: workers.length, accounts: accounts.length, sends, concurrency, pacing: "off" },
      steady,
      failover,
      bars: {
        "steady.duplicates==0": steady.duplicates === 0,
        "failover.duplicates==0": failover.duplicates === 0,
      },
      pass: steady.duplicates === 0 && failover.duplicates === 0,
    };
  } finally {
    await mongo?.close();
    await pc.stop();
  }
}
