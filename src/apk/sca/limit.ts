// Bounded concurrency for per-file work: enough reads in flight to keep the libuv pool busy, never one
// promise per file of a 100,000-file tree.

/**
 * Runs `fn` over `items` with at most `limit` calls in flight; results keep the input order. After a
 * failure no new calls start, and the first error is thrown once the calls in flight have settled (so
 * nothing keeps running behind the caller's cleanup).
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i] as T, i);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}
