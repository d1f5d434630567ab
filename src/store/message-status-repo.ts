// The last known status of each message an account sent (`message_status`, `_id` = accountId|messageId),
// kept from the send's answer and the engine's receipts. A status only moves forward (ackRank); an
// older receipt arriving late changes nothing. Conditional upsert: a filter that misses an existing
// document makes the upsert insert a duplicate `_id`, refused, which is the "already further" answer.
// The writes of one message are made one at a time: its owner is the only node that writes them (the
// send's record and the engine's receipts), and FerretDB runs an update as a read and a write of the
// whole document, so two at once lose one's fields (a receipt's update dropped the recipient the send
// had just recorded).
import type { Collection, Db } from "mongodb";
import { ackRank, type AckStatus } from "../messages/types.ts";
import { KeyedSerial } from "../keyed-serial.ts";
import { isDuplicateKey } from "./mongo.ts";

export const MESSAGE_STATUS_COLLECTION = "message_status";

export interface MessageStatusDoc {
  _id: string;
  workspaceId: string;
  accountId: string;
  messageId: string;
  status: AckStatus;
  rank: number;
  /** When it reached `status`. */
  at: Date;
  to?: string;
  type?: string;
  sentAt?: Date;
  expiresAt: Date;
}

export interface StatusUpdate {
  workspaceId: string;
  accountId: string;
  messageId: string;
  status: AckStatus;
  at: Date;
  /** Known at the send only. */
  to?: string;
  type?: string;
}

export class MessageStatusRepo {
  readonly col: Collection<MessageStatusDoc>;
  private readonly writes = new KeyedSerial();

  constructor(
    db: Db,
    private readonly retentionMs: number,
  ) {
    this.col = db.collection<MessageStatusDoc>(MESSAGE_STATUS_COLLECTION);
  }

  /** Records a receipt: `advanced` when it moved the message on, `same` when the message already had
   * that status, `behind` when it already had a later one (receipts can arrive out of order). */
  async recordReceipt(u: StatusUpdate): Promise<"advanced" | "same" | "behind"> {
    if (await this.advance(u)) return "advanced";
    const doc = await this.col.findOne({ _id: `${u.accountId}|${u.messageId}` }, { projection: { rank: 1 } });
    return (doc?.rank ?? 0) > ackRank(u.status) ? "behind" : "same";
  }

  /** Records `u.status` unless the message already reached it or a later one; true when recorded. */
  advance(u: StatusUpdate): Promise<boolean> {
    return this.writes.run(`${u.accountId}|${u.messageId}`, () => this.advanceNow(u));
  }

  private async advanceNow(u: StatusUpdate): Promise<boolean> {
    const rank = ackRank(u.status);
    const set: Partial<MessageStatusDoc> = { status: u.status, rank, at: u.at };
    if (u.to) set.to = u.to;
    if (u.type) set.type = u.type;
    if (u.status === "sent") set.sentAt = u.at;
    try {
      const res = await this.col.updateOne(
        { _id: `${u.accountId}|${u.messageId}`, rank: { $lt: rank } },
        {
          $set: set,
          $setOnInsert: {
            workspaceId: u.workspaceId,
            accountId: u.accountId,
            messageId: u.messageId,
            expiresAt: new Date(u.at.getTime() + this.retentionMs),
          },
        },
        { upsert: true },
      );
      if (res.matchedCount + res.upsertedCount === 1) return true;
      // Already further and not refused as a duplicate (FerretDB may answer an upsert whose filter
      // misses an existing document with nothing done): what only the send knows is recorded anyway.
      await this.recordSendFacts(u);
      return false;
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      // Already further (a receipt was quicker than the send's own record): what only the send
      // knows is recorded all the same.
      await this.recordSendFacts(u);
      return false;
    }
  }

  /** The recipient and type, which only the send knows, on a message's record that a receipt made. */
  private async recordSendFacts(u: StatusUpdate): Promise<void> {
    if (u.to || u.type)
      await this.col.updateOne(
        { _id: `${u.accountId}|${u.messageId}` },
        { $set: { to: u.to, type: u.type } },
      );
  }

  /** A message of an account in a workspace (another workspace's is not found). */
  async get(workspaceId: string, accountId: string, messageId: string): Promise<MessageStatusDoc | null> {
    return this.col.findOne({ _id: `${accountId}|${messageId}`, workspaceId });
  }

  /** Deletes every record of an account (the account was deleted). */
  async deleteAccount(accountId: string): Promise<number> {
    return (await this.col.deleteMany({ accountId })).deletedCount;
  }

  async prune(now = new Date()): Promise<number> {
    return (await this.col.deleteMany({ expiresAt: { $lt: now } })).deletedCount;
  }
}

/** A message's status as GET /api/v1/accounts/:accountId/messages/:messageId answers it. */
export interface MessageStatusView {
  id: string;
  accountId: string;
  status: string;
  at: string;
  to?: string;
  type?: string;
  sentAt?: string;
}

export function messageStatusView(doc: MessageStatusDoc): MessageStatusView {
  const view: MessageStatusView = {
    id: doc.messageId,
    accountId: doc.accountId,
    status: doc.status,
    at: doc.at.toISOString(),
  };
  if (doc.to) view.to = doc.to;
  if (doc.type) view.type = doc.type;
  if (doc.sentAt) view.sentAt = doc.sentAt.toISOString();
  return view;
}
