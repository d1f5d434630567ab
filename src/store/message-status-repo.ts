// The last known status of each message an account sent (`message_status`, `_id` = accountId|messageId),
// kept from the send's answer and the engine's receipts. A status only moves forward (ackRank); an
// older receipt arriving late changes nothing. Receipts are counted apart (`receiptRank`): the send's own
// record of `sent` is no receipt, so the engine's `sent` after it is still news to listeners, and a
// repeated receipt is not. Conditional upsert: a filter that misses an existing document makes the
// upsert insert a duplicate `_id`, refused, which is the "already further" answer.
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
  /** The rank of the latest receipt recorded (absent while the send's own record is all there is). */
  receiptRank?: number;
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

  /**
   * Records a receipt: `advanced` when it is news, the first receipt of a status the message had not
   * passed (a message no record knows gets one: sent from the phone, or its record expired); `same` when
   * a receipt of that status came before; `behind` when the message already has a later status
   * (receipts can arrive out of order).
   */
  recordReceipt(u: StatusUpdate): Promise<"advanced" | "same" | "behind"> {
    const id = `${u.accountId}|${u.messageId}`;
    const rank = ackRank(u.status);
    return this.writes.run(id, async () => {
      if (await this.advanceNow(u, { receiptRank: rank })) return "advanced";
      const doc = await this.col.findOne({ _id: id }, { projection: { rank: 1, receiptRank: 1 } });
      // No record after all: deleted meanwhile, with its account.
      if (!doc) return "same";
      if (doc.rank > rank) return "behind";
      if ((doc.receiptRank ?? 0) >= rank) return "same";
      // The status the send recorded, told by a receipt for the first time.
      await this.col.updateOne({ _id: id }, { $set: { receiptRank: rank } });
      return "advanced";
    });
  }

  /** Records `u.status` unless the message already reached it or a later one; true when recorded. */
  advance(u: StatusUpdate): Promise<boolean> {
    return this.writes.run(`${u.accountId}|${u.messageId}`, () => this.advanceNow(u));
  }

  /** `advance`, its write setting `extra` too. */
  private async advanceNow(u: StatusUpdate, extra: Partial<MessageStatusDoc> = {}): Promise<boolean> {
    const rank = ackRank(u.status);
    const set: Partial<MessageStatusDoc> = { ...extra, status: u.status, rank, at: u.at };
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
