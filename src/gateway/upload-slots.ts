// Large request bodies in flight on this gateway. A media route reads a JSON body of up to
// MEDIA_MAX_BYTES in base64 (~21 MB) into memory, and parses it: one key sending many at once could
// fill the gateway's heap before any quota or rate limit looked at them (the per-key rate limit
// bounds requests per minute, not bytes held at once). So a body past BODY_LIMIT takes a slot, of the
// gateway's and of its key's, until its request ends; without one it is refused before it is read.
import { Errors } from "moleculer";
import { PlaceCounts } from "../place-counts.ts";
import { declaredLength } from "./http.ts";

export const ERR_TOO_MANY_UPLOADS = "TOO_MANY_UPLOADS";

/** Large bodies read at once by one gateway, and by one key on it. */
export const UPLOADS_PER_GATEWAY = 16;
export const UPLOADS_PER_KEY = 4;

/** 429: the key (or the gateway) reads as many large bodies as it may at once; retry in a second. */
export class TooManyUploadsError extends Errors.MoleculerClientError {
  constructor(scope: "key" | "gateway", limit: number) {
    super(
      `Too many large request bodies in flight for this ${scope === "key" ? "API key" : "gateway"} ` +
        `(at most ${limit} at once); retry in a second`,
      429,
      ERR_TOO_MANY_UPLOADS,
      { scope, limit, retryAfter: 1 },
    );
  }
}

export class UploadSlots {
  private readonly slots: PlaceCounts;

  constructor(
    readonly perGateway = UPLOADS_PER_GATEWAY,
    readonly perKeyLimit = UPLOADS_PER_KEY,
  ) {
    this.slots = new PlaceCounts(perGateway, perKeyLimit);
  }

  /** Takes a slot for `keyId`; returns its release (idempotent). TooManyUploadsError when none is free. */
  take(keyId: string): () => void {
    const full = this.slots.full(keyId);
    if (full === "key") throw new TooManyUploadsError("key", this.perKeyLimit);
    if (full === "all") throw new TooManyUploadsError("gateway", this.perGateway);
    this.slots.take(keyId);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.slots.give(keyId);
    };
  }

  /** Slots taken (tests and diagnostics). */
  get inFlight(): number {
    return this.slots.taken;
  }
}

/** Whether a request's body may be past `smallBytes`: its Content-Length says so, or it has none
 * (chunked: its size is known only once read). */
export function isLargeBody(
  headers: Record<string, string | string[] | undefined>,
  smallBytes: number,
): boolean {
  const length = declaredLength(headers);
  if (length !== null) return length > smallBytes;
  return headers["transfer-encoding"] !== undefined;
}
