// Gives a service a MongoDB connection for its lifetime: `this.db` and `this.collections.<name>`,
// connected on `started` to configOf(broker).mongoUrl (never process.env: tests run many brokers) and
// closed on `stopped` (after the service's own `stopped`, which Moleculer runs first).
import type { Collection, Db, MongoClient } from "mongodb";
import type { ServiceSchema } from "moleculer";
import { configOf } from "../src/config.ts";
import { connectMongo, ensureIndexes } from "../src/store/mongo.ts";

export interface MongoMixinOptions {
  /** Collections exposed as `this.collections.<name>`. @default [] */
  collections?: string[];
  /** Create the indexes of src/store/mongo.ts at start. @default true */
  ensureIndexes?: boolean;
}

/** What the mixin adds to a service's `this`. */
export interface MongoVars {
  mongo: MongoClient;
  db: Db;
  collections: Record<string, Collection<any>>;
}

export function mongoMixin(options: MongoMixinOptions = {}): Partial<ServiceSchema> {
  const { collections = [], ensureIndexes: withIndexes = true } = options;
  return {
    async started(this: any) {
      const cfg = configOf(this.broker);
      const { client, db } = await connectMongo(cfg.mongoUrl, { poolSize: cfg.mongoPoolSize });
      this.mongo = client;
      this.db = db;
      this.collections = Object.fromEntries(collections.map((name) => [name, db.collection(name)]));
      if (withIndexes) await ensureIndexes(db);
    },
    async stopped(this: any) {
      await this.mongo?.close();
    },
  };
}
