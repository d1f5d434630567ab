// A database write that lands but whose answer is lost: FerretDB can answer "database is locked" after
// the write landed, so the caller's retry finds its own write done.

/** The next call of `target[method]` runs for real, then throws a transient error, once. Returns the
 * restore: call it in a `finally`, whether or not the call came. */
export function landThenLoseAnswer<T extends object>(target: T, method: keyof T & string): () => void {
  const object = target as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
  const real = object[method].bind(target);
  object[method] = async (...a: unknown[]) => {
    await real(...a);
    object[method] = real;
    throw new Error("database is locked");
  };
  return () => void (object[method] = real);
}
