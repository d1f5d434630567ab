// A list position as clients see it (`nextCursor`): base64url of `[time ms, id]`, the sort key of the
// last item of a page. Opaque to clients; a cursor that is not one of ours reads as null.

export interface PagePosition {
  at: Date;
  id: string;
}

export function pageCursorOf(at: Date, id: string): string {
  return Buffer.from(JSON.stringify([at.getTime(), id])).toString("base64url");
}

export function pagePositionOf(cursor: string): PagePosition | null {
  try {
    const [ms, id] = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown[];
    if (typeof ms !== "number" || !Number.isSafeInteger(ms) || typeof id !== "string" || !id) return null;
    return { at: new Date(ms), id };
  } catch {
    return null;
  }
}
