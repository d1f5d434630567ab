import { MongoClient } from "mongodb";
import { startMongoWire } from "/work/main/src/dev/servers.ts";
import { rmSync } from "node:fs";
import { performance } from "node:perf_hooks";
const dir = "/tmp/fdbbench-data"; rmSync(dir, { recursive: true, force: true });
const srv = await startMongoWire(dir);
const c = await MongoClient.connect(srv.url, { maxPoolSize: 16 });
const db = c.db();
async function setup(name: string) {
  const col = db.collection<any>(name);
  await col.createIndex({ eventId: 1, endpointId: 1 }, { unique: true });
  await col.createIndex({ endpointId: 1, accountId: 1, seq: 1 });
  await col.createIndex({ status: 1, endpointId: 1 });
  await col.createIndex({ endpointId: 1, status: 1, createdAt: -1 });
  return col;
}
const doc = (i: number) => ({ _id: `ep1|acc${i % 50}|${String(i).padStart(12, "0")}`, eventId: `evt${i}`, endpointId: "ep1", workspaceId: "ws", accountId: `acc${i % 50}`, event: "account.status", payload: { accountId: `acc${i%50}`, status: "connected", at: new Date().toISOString(), cursor: String(i) }, seq: i, status: "pending", attempts: 0, nextAttemptAt: new Date(), lastError: null, lastStatusCode: null, createdAt: new Date(), deliveredAt: null, recordedBy: "n1" });
const N = 2000;
async function time(label: string, f: () => Promise<unknown>) { const t = performance.now(); await f(); const ms = performance.now() - t; console.log(label, Math.round(ms), "ms", Math.round(N / (ms / 1000)), "/s"); }
let col = await setup("a");
//await time("insertOne x2000 conc 16", async () => { let i = 0; await Promise.all(Array.from({ length: 16 }, async () => { while (i < N) { const k = i++; await col.insertOne(doc(k)); } })); });
//await time("findOne _id x2000 conc 16", async () => { let i = 0; await Promise.all(Array.from({ length: 16 }, async () => { while (i < N) { const k = i++; await col.findOne({ _id: doc(k)._id }); } })); });
//await time("updateOne _id x2000 conc 16", async () => { let i = 0; await Promise.all(Array.from({ length: 16 }, async () => { while (i < N) { const k = i++; await col.updateOne({ _id: doc(k)._id }, { $set: { status: "delivered", deliveredAt: new Date(), attempts: 1 } }); } })); });
col = await setup("b");
await time("insertMany 20x100", async () => { for (let b = 0; b < 20; b++) await col.insertMany(Array.from({ length: 100 }, (_, j) => doc(b * 100 + j)), { ordered: false }); });
await time("insertMany dup 20x100 (all fail)", async () => { for (let b = 0; b < 20; b++) await col.insertMany(Array.from({ length: 100 }, (_, j) => doc(b * 100 + j)), { ordered: false }).catch(() => 0); });
//await time("find _id range 40x50", async () => { for (let a = 0; a < 40; a++) await col.find({ _id: { $gte: `ep1|acc${a}|`, $lt: `ep1|acc${a}|~` } }).limit(50).toArray(); });
await time("bulkWrite updates 20x100", async () => { try { for (let b = 0; b < 20; b++) await col.bulkWrite(Array.from({ length: 100 }, (_, j) => ({ updateOne: { filter: { _id: doc(b * 100 + j)._id }, update: { $set: { status: "delivered", deliveredAt: new Date(), attempts: 1 } } } })), { ordered: false }); } catch (e) { console.log("bulk err", e); } });
await time("updateMany $in 20x100", async () => { for (let b = 0; b < 20; b++) await col.updateMany({ _id: { $in: Array.from({ length: 100 }, (_, j) => doc(b * 100 + j)._id) } }, { $set: { status: "delivered2" } }); });
console.log("done"); await c.close(); await srv.stop();
