// Helpers of the event-log specs: a connected simulated account, and the whole log of a workspace.
import type { ServiceBroker } from "moleculer";
import type { AccountView } from "../../../src/accounts/types.ts";
import type { EventsPage } from "../../../src/session/event-publisher.ts";
import type { ConfigOverrides } from "../../support/cluster.ts";
import { waitFor } from "../../support/wait.ts";

/** QR screens that last the whole spec: accounts wait in qr_scanning until scanned. */
export const LONG_QR: ConfigOverrides["qr"] = { firstTtlMs: 600000, refreshMs: 600000, max: 6 };

/** Creates a simulated account through `accounts.*` and scans it: resolves once it is connected. */
export async function connectedAccount(
  gw: ServiceBroker,
  workspaceId: string,
  name: string,
): Promise<AccountView> {
  const account: AccountView = await gw.call("accounts.create", { workspaceId, name, engine: "simulated" });
  const statusOf = async () =>
    ((await gw.call("accounts.get", { workspaceId, accountId: account.id })) as AccountView).status;
  await waitFor(async () => (await statusOf()) === "qr_scanning", { what: `${name} qr_scanning` });
  await gw.call("accounts.simulate", {
    workspaceId,
    accountId: account.id,
    action: "scan",
    phoneNumber: "4915112345678",
  });
  await waitFor(async () => (await statusOf()) === "connected", { what: `${name} connected` });
  return account;
}

/** `simulate/message` with text `m<i>`. */
export function simulateMessage(
  gw: ServiceBroker,
  workspaceId: string,
  id: string,
  i: number,
): Promise<unknown> {
  return gw.call("accounts.simulate", {
    workspaceId,
    accountId: id,
    action: "message",
    from: "4915100000001",
    text: `m${i}`,
  });
}

/** Every logged event of a workspace, read page by page through accounts.events. */
export async function wholeLog(gw: ServiceBroker, workspaceId: string): Promise<EventsPage["items"]> {
  const items: EventsPage["items"] = [];
  let after = "0";
  for (;;) {
    const page: EventsPage = await gw.call("accounts.events", { workspaceId, after, limit: 1000 });
    items.push(...page.items);
    if (page.items.length === 0) return items;
    after = page.nextCursor;
  }
}
