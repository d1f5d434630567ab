// Whether this node's Moleculer transporter is on the bus. Broadcast events go out over plain NATS,
// which keeps nothing for a connection that is away: what was broadcast while a gateway's connection
// was down (a NATS restart, a network cut) never reaches it, though its Socket.IO clients stay
// connected. nats.js reconnects by itself and Moleculer's transporter says nothing of it (its
// `$transporter.connected` comes only from its own connects), so the connection's status is read here.
import type { ServiceBroker } from "moleculer";
import type { NatsConnection } from "nats";

export interface BusWatch {
  /** The connection dropped: events broadcast from now on are lost to this node. */
  down(): void;
  /** It is back (subscriptions restored). */
  up(): void;
}

/** Reports the transporter connection's drops; returns what ends the watch (nats.js ends a status
 * iterator only when told, not when its connection closes). A no-op without a NATS transporter (a
 * broker alone, in unit tests). */
export function watchBus(broker: ServiceBroker, watch: BusWatch): () => void {
  const client = (broker.transit?.tx as { client?: NatsConnection } | undefined)?.client;
  if (!client || typeof client.status !== "function") return () => undefined;
  // A QueuedIterator, typed as a plain AsyncIterable.
  const statuses = client.status() as ReturnType<NatsConnection["status"]> & { stop?: () => void };
  const end = () => statuses.stop?.();
  void client.closed().then(end, end);
  void (async () => {
    for await (const s of statuses) {
      if (s.type === "disconnect") watch.down();
      else if (s.type === "reconnect") watch.up();
    }
  })().catch(() => undefined);
  return end;
}
