// The keys of a KV bucket, read from its stream's subjects in one request. nats.js 2.x's kv.keys()
// reads them through a consumer and ends on the message after which nothing is pending: when the last
// key expires by TTL between the consumer's creation and its delivery, that message never comes and
// the iteration never ends. The `nodes` bucket's leases expire that way whenever a node goes.
import type { JetStreamManager } from "nats";

/** Lists the keys a bucket holds (deleted ones included: their markers are messages too). */
export type KeyLister = () => Promise<string[]>;

export function bucketKeys(jsm: JetStreamManager, bucket: string): KeyLister {
  const prefix = `$KV.${bucket}.`;
  return async () => {
    const info = await jsm.streams.info(`KV_${bucket}`, { subjects_filter: `${prefix}>` });
    return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
  };
}
