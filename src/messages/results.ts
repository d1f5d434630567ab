// What a send answers from its idempotency record (the first request's result, repeated).
import { Errors } from "moleculer";
import type { IdempotencyDoc } from "../store/idempotency-repo.ts";
import type { SendResult } from "./types.ts";

/** The answer a record gives: `recorded`/`sending` are `pending` to the caller. */
export function resultOf(doc: IdempotencyDoc, duplicate: boolean): SendResult {
  const status = doc.state === "recorded" || doc.state === "sending" ? "pending" : doc.state;
  const result: SendResult = { id: doc.messageId, status, at: doc.at.toISOString() };
  if (duplicate) result.duplicate = true;
  if (doc.error) result.error = { type: doc.error.type, message: doc.error.message };
  return result;
}

/** The error a `failed` record answers again (the first request's error). */
export function failureOf(doc: IdempotencyDoc): Errors.MoleculerError {
  const e = doc.error ?? { message: "The send failed", code: 500, type: "SEND_FAILED" };
  return new Errors.MoleculerError(e.message, e.code, e.type, { idempotencyKey: doc.key, duplicate: true });
}
