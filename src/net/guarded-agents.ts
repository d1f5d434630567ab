// HTTP(S) agents whose connections go only where an AddressPolicy allows (address-guard.ts): the check
// is made on the address actually connected to, after DNS, so a name that resolves (or re-resolves)
// inward is refused too. Shared by webhook deliveries and media fetches.
import { lookup, type LookupAddress } from "node:dns";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import type { LookupFunction } from "node:net";
import type { AddressPolicy } from "./address-guard.ts";

/** A connection the policy refused (raised from the agents' lookup). */
export class AddressNotAllowedError extends Error {
  readonly code = "ADDRESS_NOT_ALLOWED";
}

/** Resolves like dns.lookup, then refuses the connection when an address is not allowed: checked on
 * the address connected to, so DNS rebinding cannot slip an inward address past a check made earlier. */
function guardedLookup(policy: AddressPolicy): LookupFunction {
  return (hostname, options, callback) => {
    lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, "", 0);
      const list = addresses as LookupAddress[];
      const refused = list.map((a) => policy.check(a.address)).find((r) => r !== null);
      if (refused) return callback(new AddressNotAllowedError(`${hostname}: ${refused}`), "", 0);
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, list);
      callback(null, list[0].address, list[0].family);
    });
  };
}

/** One agent pair per policy: connections are kept alive between requests to the same host. */
const agents = new WeakMap<AddressPolicy, { http: HttpAgent; https: HttpsAgent }>();

export function agentsFor(policy: AddressPolicy): { http: HttpAgent; https: HttpsAgent } {
  let pair = agents.get(policy);
  if (!pair) {
    const lookup = guardedLookup(policy);
    pair = {
      http: new HttpAgent({ keepAlive: true, lookup }),
      https: new HttpsAgent({ keepAlive: true, lookup }),
    };
    agents.set(policy, pair);
  }
  return pair;
}
