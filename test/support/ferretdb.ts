// Specs of what our FerretDB build (tools/ferretdb/patches.mjs) does: they run against it only.
import { randomBytes } from "node:crypto";
import { MongoClient, type MongoClientOptions } from "mongodb";
import { mongoUrlFor } from "./env.ts";

/** A client of a fresh database on our FerretDB build, or null when the server is another one
 * (MONGO_URL names it: there is nothing of ours to check). */
export async function ourFerretDb(prefix: string, options?: MongoClientOptions): Promise<MongoClient | null> {
  const client = await MongoClient.connect(
    mongoUrlFor(`${prefix}${randomBytes(3).toString("hex")}`),
    options,
  );
  const info = await client.db().admin().command({ buildInfo: 1 });
  if ("ferretdbVersion" in info) return client;
  await client.close();
  return null;
}
