// The session.* account actions (services/session.service.ts) once they run on the workspace's owner:
// routing brought the call to this node and the account's record was read (the tenancy check). Each
// drives this node's runtime and answers with the account's status; an account no engine runs here
// answers with what its record says.
import { retryTransient } from "../store/mongo.ts";
import { simulatedIncomingOf } from "../accounts/params.ts";
import type {
  AccountDoc,
  AccountStatusEvent,
  QrView,
  SessionStatusResult,
  SimulateParams,
} from "../accounts/types.ts";
import { InvalidStateError, NotImplementedByEngine } from "../errors.ts";
import type { AccountsRepo } from "../store/accounts-repo.ts";
import type { AuthStore } from "../store/auth-store.ts";
import type { Broadcast } from "./event-publisher.ts";
import type { SessionRuntime } from "./runtime.ts";

export class OwnedAccounts {
  /**
   * @param authStore the node's auth store, for the logout of an account that runs nowhere
   * @param nodeId this node: where an account that was just stopped here is reported
   * @param repo and `publish`: the `logged_out` of an account that runs nowhere, written and announced
   */
  constructor(
    private readonly runtime: SessionRuntime,
    private readonly authStore: Pick<AuthStore, "delete">,
    private readonly nodeId: string,
    private readonly repo: Pick<AccountsRepo, "unlinkIdle">,
    private readonly publish: Broadcast,
  ) {}

  async start(doc: AccountDoc): Promise<SessionStatusResult> {
    const info = await this.runtime.start(doc);
    return { accountId: info.accountId, status: info.status, running: true, node: info.node };
  }

  async stop(doc: AccountDoc): Promise<SessionStatusResult> {
    const status = await this.runtime.stop(doc._id);
    return status ? { accountId: doc._id, status, running: false, node: this.nodeId } : recordedStatus(doc);
  }

  async logout(doc: AccountDoc): Promise<SessionStatusResult> {
    const status = await this.runtime.logout(doc._id);
    if (status) return { accountId: doc._id, status, running: false, node: this.nodeId };
    // Not running anywhere reachable: unlinking is forgetting the saved auth state, and the record
    // (perhaps still showing a live status: its node lost, not restored yet) now says `logged_out`,
    // wanted stopped. That write goes first: from then on no restore claims the account.
    const fence = await this.runtime.fenceFor(doc.workspaceId);
    const at = new Date();
    const before = await this.repo.unlinkIdle(doc._id, fence, at, doc.status);
    // Announced before the state's deletion: a retry after that fails finds the account `logged_out`
    // already and has nothing to announce.
    if (before) {
      const event: AccountStatusEvent = {
        accountId: doc._id,
        workspaceId: doc.workspaceId,
        sessionId: doc.sessionId,
        status: "logged_out",
        previousStatus: before.status,
        node: fence.node,
        epoch: fence.epoch,
        at: at.toISOString(),
      };
      await this.publish("account.status", event);
    }
    // Stamped: a node taking over the account meanwhile (a newer epoch) keeps its state, and this
    // logout is refused (NotOwnerError) instead.
    await retryTransient(() => this.authStore.delete(doc.sessionId, fence));
    // A restore that claimed it before that write may have opened it meanwhile: unlinked too.
    const opened = await this.runtime.logout(doc._id);
    if (opened) return { accountId: doc._id, status: opened, running: false, node: this.nodeId };
    if (!before) return recordedStatus(doc);
    return { accountId: doc._id, status: "logged_out", running: false, node: fence.node };
  }

  status(doc: AccountDoc): SessionStatusResult {
    const info = this.runtime.info(doc._id);
    return info
      ? { accountId: doc._id, status: info.status, running: true, node: info.node }
      : recordedStatus(doc);
  }

  /** The QR on screen; InvalidStateError when the account is not waiting for a scan. */
  qr(doc: AccountDoc): QrView {
    const qr = this.runtime.qr(doc._id);
    if (!qr) {
      const status = this.runtime.info(doc._id)?.status ?? doc.status;
      throw new InvalidStateError(`Account '${doc._id}' is not waiting for a QR scan (status ${status})`, {
        accountId: doc._id,
        status,
      });
    }
    return qr;
  }

  async pairingCode(doc: AccountDoc, phoneNumber: string): Promise<{ code: string }> {
    const { result } = await this.runtime.drive(doc._id, (e) => e.requestPairingCode(phoneNumber));
    return { code: result };
  }

  async sendText(doc: AccountDoc, to: string, text: string): Promise<{ id: string }> {
    const { result } = await this.runtime.drive(doc._id, (e) => e.sendText(to, text));
    return result;
  }

  /** Plays `p.action` on the account's engine; NotImplementedByEngine unless it is the simulated one. */
  async simulate(doc: AccountDoc, p: SimulateParams): Promise<SessionStatusResult> {
    const { status } = await this.runtime.drive(doc._id, async (engine) => {
      const sim = engine.simulate;
      if (!sim) throw new NotImplementedByEngine(engine.name, `simulate.${p.action}`);
      if (p.action === "scan") return sim.scan(p.phoneNumber ?? randomPhoneNumber());
      if (p.action === "disconnect") return sim.disconnect();
      if (p.action === "logout") return sim.logout();
      return sim.message(p.from ?? "15550000000", p.text ?? "", simulatedIncomingOf(p));
    });
    return { accountId: doc._id, status, running: this.runtime.has(doc._id), node: this.nodeId };
  }
}

/** An account no engine runs here: its status as its record has it. */
function recordedStatus(doc: AccountDoc): SessionStatusResult {
  return { accountId: doc._id, status: doc.status, running: false, node: doc.node ?? null };
}

function randomPhoneNumber(): string {
  return `1555${String(Math.floor(Math.random() * 1e7)).padStart(7, "0")}`;
}
