// Gives a service a MongoDB connection for its lifetime: `this.db` (for the repositories of src/store),
// connected on `started` to configOf(broker).mongoUrl (never process.env: tests run many brokers) and
// closed on `stopped` (after the service's own `stopped`, which Moleculer runs first).
import type { Db, MongoClient } from "mongodb";
import type { Service, ServiceSchema } from "moleculer";
import { configOf } from "../src/config.ts";
import { connectMongo, ensureIndexes } from "../src/store/mongo.ts";

export interface MongoMixinOptions {
  /** Create the indexes of src/store/mongo.ts at start. @default true */
  ensureIndexes?: boolean;
}

/** What the mixin adds to a service's `this`. */
export interface MongoVars {
  mongo: MongoClient;
  db: Db;
}

type MongoThis = Service & Partial<MongoVars>;

export function mongoMixin(options: MongoMixinOptions = {}): Partial<ServiceSchema> {
  const { ensureIndexes: withIndexes = true } = options;
  return {
    async started(this: MongoThis) {
      const cfg = configOf(this.broker);
      const { client, db } = await connectMongo(cfg.mongoUrl, { poolSize: cfg.mongoPoolSize });
      this.mongo = client;
      this.db = db;
      if (withIndexes) await ensureIndexes(db);
    },
    async stopped(this: MongoThis) {
      await this.mongo?.close();
    },
  };
}
