// Runs `fn` over items at most `limit` at a time, in order of start; resolves when all have ended.
// `fn` handles its own failures (a rejection ends that worker's share early and rejects the whole).

export async function inParallel<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<unknown>,
): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: Math.min(Math.max(1, limit), queue.length) }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item);
    }),
  );
}
