// How JetStream says a bucket's stream is gone (its storage lost, the stream deleted): a read of it
// answers 404 "stream not found" (API error 10059). Writes answer 503 (no responders) instead, which a
// NATS restart answers too, so only reads tell.

/** Whether `err` says the stream a request named does not exist. */
export function isStreamNotFound(err: unknown): boolean {
  const e = err as { api_error?: { err_code?: number }; message?: string } | null;
  return e?.api_error?.err_code === 10059 || /stream not found/i.test(e?.message ?? "");
}
