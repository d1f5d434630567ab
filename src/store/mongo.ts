// MongoDB connection and the indexes of DESIGN.md ("Storage"). Only features that both MongoDB 7 and
// FerretDB support: plain and unique indexes, no TTL, no transactions.
import { MongoBulkWriteError, MongoClient, type Db } from "mongodb";
import { DatabaseUnavailableError } from "../errors.ts";
import { retry } from "../retry.ts";

export const COLLECTIONS = {
  accounts: "accounts",
  apiKeys: "api_keys",
  idempotency: "idempotency",
  accountTallies: "account_tallies",
} as const;

/** How long an operation waits for a reachable server before it fails: a request facing a database
 * outage answers 503 DATABASE_UNAVAILABLE within 2 s instead of hanging. */
export const SERVER_SELECTION_TIMEOUT_MS = 1500;
/** How long connecting at start keeps trying. */
const CONNECT_TIMEOUT_MS = 15000;

/** Connections per MongoClient unless MONGO_POOL_SIZE or the URL's `maxPoolSize` says otherwise. */
export const DEFAULT_MONGO_POOL_SIZE = 10;

/**
 * Connects to `url` (database name in its path). Every service of every node has a client of its own,
 * so the pool is bounded (the driver's default, 100, lets a cluster open hundreds of connections, and
 * FerretDB stops answering at ~800). A `maxPoolSize` in the URL wins over `poolSize`.
 */
export async function connectMongo(
  url: string,
  { poolSize = DEFAULT_MONGO_POOL_SIZE }: { poolSize?: number } = {},
): Promise<{ client: MongoClient; db: Db }> {
  const inUrl = /[?&]maxPoolSize=/i.test(url);
  const options = {
    serverSelectionTimeoutMS: SERVER_SELECTION_TIMEOUT_MS,
    ...(inUrl || poolSize <= 0 ? {} : { maxPoolSize: poolSize }),
  };
  // A node may start before its database: keep trying for a while (each try waits for a server).
  const client = await retry(() => MongoClient.connect(url, options), {
    attempts: Infinity,
    delayMs: 500,
    deadline: Date.now() + CONNECT_TIMEOUT_MS,
  });
  return { client, db: client.db() };
}

/** Creates the indexes every service relies on; idempotent, safe to run from every node at start. */
export async function ensureIndexes(db: Db): Promise<void> {
  const specs: [string, Record<string, 1>, { unique?: boolean; name: string }][] = [
    [COLLECTIONS.accounts, { sessionId: 1 }, { unique: true, name: "sessionId_unique" }],
    [COLLECTIONS.accounts, { workspaceId: 1 }, { name: "workspaceId" }],
    [COLLECTIONS.apiKeys, { hash: 1 }, { unique: true, name: "hash_unique" }],
    [COLLECTIONS.apiKeys, { workspaceId: 1 }, { name: "workspaceId" }],
    // The queued sends of an account, looked up when it connects on a new owner.
    [COLLECTIONS.idempotency, { accountId: 1, state: 1 }, { name: "accountId_state" }],
    // The recent creates of a workspace at its accounts quota (src/quotas.ts).
    [COLLECTIONS.accountTallies, { workspaceId: 1, at: 1 }, { name: "workspaceId_at" }],
  ];
  for (const [collection, keys, options] of specs) {
    await createIndexRacing(() => db.collection(collection).createIndex(keys, options));
  }
}

/** Two nodes starting together may race to create the same index; the loser sees it exist next time. */
export function createIndexRacing<T>(create: () => Promise<T>): Promise<T> {
  return retry(create, { attempts: 3, delayMs: (attempt) => 100 * attempt });
}

/** MongoDB's (and FerretDB's) duplicate key error, E11000: a unique `_id` or index refused an insert. */
export function isDuplicateKey(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 11000;
}

/** Documents an ordered insert sends in one command at most. Stock FerretDB (1.24) runs an insert in
 * batches of its `--batch-size` (default 100) and stops an ordered one at a refused document only within
 * that batch: the batches after it still go in, so rows land past the refused one while the answer says
 * nothing after it did (a writer then places them again: stored twice). Our build stops there
 * (tools/ferretdb/patches.mjs); the bound stays for a stock FerretDB named by MONGO_URL. */
export const ORDERED_INSERT_MAX = 100;

/** Inserts `docs` in order (`insert` sends one ordered command, of at most ORDERED_INSERT_MAX) and
 * answers how many went in before the first one refused as a duplicate key (all of them when none
 * was); any other error is thrown, carrying how many earlier commands had stored (`storedBefore`). */
export async function insertedInOrder<T>(
  docs: T[],
  insert: (chunk: T[]) => Promise<unknown>,
): Promise<number> {
  let done = 0;
  while (done < docs.length) {
    const chunk = docs.slice(done, done + ORDERED_INSERT_MAX);
    try {
      await insert(chunk);
      done += chunk.length;
    } catch (err) {
      const first = err instanceof MongoBulkWriteError ? [err.writeErrors ?? []].flat()[0] : undefined;
      if (!first || !isDuplicateKey(first)) {
        if (err instanceof Error) Object.assign(err, { storedBefore: done });
        throw err;
      }
      return done + first.index;
    }
  }
  return done;
}

/** How many documents of an insertedInOrder that failed are known stored (the commands before the
 * one that failed; that one may have stored part of its own). */
export function storedBefore(err: unknown): number {
  const n = (err as { storedBefore?: unknown } | null)?.storedBefore;
  return typeof n === "number" ? n : 0;
}

/** Errors worth another try: the server was briefly unreachable or busy (FerretDB's SQLite backend
 * answers concurrent writes with "database is locked" under load). */
export function isTransientMongoError(err: unknown): boolean {
  const e = err as { name?: string; message?: string; hasErrorLabel?: (label: string) => boolean } | null;
  if (!e) return false;
  if (["MongoNetworkError", "MongoNetworkTimeoutError", "MongoServerSelectionError"].includes(e.name ?? "")) {
    return true;
  }
  if (e.hasErrorLabel?.("RetryableWriteError") || e.hasErrorLabel?.("TransientTransactionError")) return true;
  return /database is locked|SQLITE_BUSY/.test(e.message ?? "");
}

export interface TransientRetryOptions {
  /** Tries in all. @default 6 */
  attempts?: number;
  /** Delay before the second try, doubled each time. @default 50 */
  baseDelayMs?: number;
}

/** No server to talk to (as opposed to one operation lost on the way): trying again at once is futile,
 * the driver has already waited SERVER_SELECTION_TIMEOUT_MS for one, or was refused. */
function isOutage(err: unknown): boolean {
  const e = err as { name?: string; message?: string; cause?: { code?: string } } | null;
  if (
    ["MongoServerSelectionError", "MongoTopologyClosedError", "MongoOperationTimeoutError"].includes(
      e?.name ?? "",
    )
  )
    return true;
  // Refused connections reach bulk writes as a MongoBulkWriteError carrying only the message.
  const refused = /\b(ECONNREFUSED|EHOSTUNREACH)\b/.test(`${e?.cause?.code ?? ""} ${e?.message ?? ""}`);
  return Boolean(e?.name?.startsWith("Mongo")) && refused;
}

/** The error a caller sees for `err`: a database that does not answer (after any retries) as
 * DatabaseUnavailableError (503), anything else as is. */
export function asDatabaseError(err: unknown): unknown {
  return isOutage(err) || isTransientMongoError(err)
    ? new DatabaseUnavailableError((err as Error).message)
    : err;
}

/** Whether `err` means the database did not answer (after any retries): asDatabaseError's 503. */
export function isDatabaseUnavailable(err: unknown): boolean {
  return asDatabaseError(err) instanceof DatabaseUnavailableError;
}

/** Runs an idempotent operation, retrying transient errors with exponential backoff; an outage stops
 * the retries at once (DatabaseUnavailableError). */
export async function retryTransient<T>(
  op: (attempt: number) => Promise<T>,
  options: TransientRetryOptions = {},
): Promise<T> {
  const { attempts = 6, baseDelayMs = 50 } = options;
  return retry(op, {
    attempts,
    delayMs: (attempt) => baseDelayMs * 2 ** (attempt - 1),
    shouldRetry: (err) => isTransientMongoError(err) && !isOutage(err),
  }).catch((err: unknown) => {
    throw asDatabaseError(err);
  });
}

/** Runs an upsert whose filter is `_id` alone, as retryTransient does. Two writers upserting one new
 * `_id` at once both look it up, find none and insert; the loser is refused (E11000), and its next try
 * finds the document and updates it. */
export function upsertById<T>(op: () => Promise<T>): Promise<T> {
  return retry(() => retryTransient(op), { attempts: 3, shouldRetry: isDuplicateKey });
}
