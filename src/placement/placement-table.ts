// The placement table (DESIGN.md §1): a JetStream KV bucket, key per workspace → {node, epoch, since}.
// Every change is a compare-and-set on the key's revision, so a claim race is decided by one atomic
// operation on the server; `epoch` increases by one on every claim and fences the owner's writes. A
// workspace's first claim takes the clock's milliseconds as its epoch: a bucket that lost its records
// (JetStream storage gone, the bucket recreated) starts each workspace above every epoch the database
// holds, where counting from 1 again would leave its accounts' records refusing every new owner.
import type { KV, KvEntry } from "nats";
import { workspaceKey } from "./hrw.ts";

export interface PlacementRecord {
  /** Owner node id. */
  node: string;
  /** Increases on every claim; MongoDB writes of the owner filter on it. */
  epoch: number;
  /** Epoch ms of the claim. */
  since: number;
}

/** A record as read, with the KV revision a compare-and-set must name. */
export interface PlacementEntry extends PlacementRecord {
  workspaceId: string;
  revision: number;
}

/** JetStream's answer to a stale revision / an existing key (err_code 10071, "wrong last sequence"). */
export function isCasConflict(err: unknown): boolean {
  const e = err as { api_error?: { err_code?: number }; message?: string } | undefined;
  return e?.api_error?.err_code === 10071 || /wrong last sequence|key exists/i.test(e?.message ?? "");
}

/** Workspace ids are `[A-Za-z0-9_-]{1,64}`, all valid KV key characters. */
export function placementKey(workspaceId: string | number): string {
  return workspaceKey(workspaceId);
}

export function decodePlacement(entry: KvEntry): PlacementEntry | null {
  if (entry.operation !== "PUT" || entry.value.length === 0) return null;
  const rec = entry.json<PlacementRecord>();
  return {
    workspaceId: entry.key,
    node: rec.node,
    epoch: rec.epoch,
    since: rec.since,
    revision: entry.revision,
  };
}

export class PlacementTable {
  constructor(readonly kv: KV) {}

  async get(workspaceId: string | number): Promise<PlacementEntry | null> {
    const entry = await this.kv.get(placementKey(workspaceId));
    return entry ? decodePlacement(entry) : null;
  }

  /**
   * Makes `node` the owner of the workspace if the record is still `previous` (null: unplaced).
   * Returns the new entry, or null when another claim won the race (nothing changed then).
   */
  async claim(
    workspaceId: string | number,
    node: string,
    previous: PlacementEntry | null,
    /** An unplaced workspace's first epoch is above this (the highest its accounts carry). */
    above = 0,
  ): Promise<PlacementEntry | null> {
    const key = placementKey(workspaceId);
    const since = Date.now();
    const epoch = previous ? previous.epoch + 1 : Math.max(since, above + 1);
    const record: PlacementRecord = { node, epoch, since };
    const data = new TextEncoder().encode(JSON.stringify(record));
    try {
      const revision = previous
        ? await this.kv.update(key, data, previous.revision)
        : await this.kv.create(key, data);
      return { workspaceId: key, ...record, revision };
    } catch (err) {
      if (isCasConflict(err)) return null;
      throw err;
    }
  }

  /** Reads the record and claims it for `node` when `mayClaim(current)` allows; one CAS attempt. */
  async claimIf(
    workspaceId: string | number,
    node: string,
    mayClaim: (current: PlacementEntry | null) => boolean,
  ): Promise<{ won: boolean; entry: PlacementEntry | null }> {
    const current = await this.get(workspaceId);
    if (!mayClaim(current)) return { won: false, entry: current };
    const claimed = await this.claim(workspaceId, node, current);
    return claimed ? { won: true, entry: claimed } : { won: false, entry: await this.get(workspaceId) };
  }

  /** Every record (operator views, tests). */
  async list(): Promise<PlacementEntry[]> {
    const out: PlacementEntry[] = [];
    const keys: string[] = [];
    for await (const k of await this.kv.keys()) keys.push(k);
    for (const k of keys) {
      const e = await this.get(k);
      if (e) out.push(e);
    }
    return out;
  }
}
