// What one small update costs on a bench's database (FerretDB here), alone and `concurrency` at a
// time, on a scratch collection dropped afterwards: a diagnostic to read latencies beside, since the
// services persist before they act.
import { performance } from "node:perf_hooks";
import { MongoClient } from "mongodb";
import { inParallel, summarize, type LatencySummary } from "./stats.ts";

const now = () => performance.timeOrigin + performance.now();

/** Update latency of 200 documents one at a time (`sequential`) and `concurrency` at a time
 * (`concurrent<concurrency>`). */
export async function measureDbWrites(mongoUrl: string, concurrency: number) {
  const client = await MongoClient.connect(mongoUrl, { maxPoolSize: concurrency });
  try {
    const col = client.db().collection<{ _id: string; n: number; at: Date }>("bench_writes");
    const ids = Array.from({ length: 200 }, (_, i) => `doc${i}`);
    await col.insertMany(ids.map((_id) => ({ _id, n: 0, at: new Date() })));
    const timed = async (limit: number): Promise<LatencySummary> => {
      const samples: number[] = [];
      await inParallel(ids, limit, async (_id) => {
        const t = now();
        await col.updateOne({ _id, n: { $gte: 0 } }, { $inc: { n: 1 }, $set: { at: new Date() } });
        samples.push(now() - t);
      });
      return summarize(samples);
    };
    const sequential = await timed(1);
    const concurrent = await timed(concurrency);
    await col.drop();
    return { sequential, [`concurrent${concurrency}`]: concurrent };
  } finally {
    await client.close();
  }
}
