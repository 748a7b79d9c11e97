/**
 * Gathers the calls made during one event-loop turn and hands them to
 * `flush` together, at the end of the turn: many payments' small Redis
 * writes become one command. Each call gets its own item's result, in the
 * order `flush` returns them (one per item); if `flush` fails, every call of
 * that batch fails with its error. Calls made while a batch is being flushed
 * go into the next one, so batches never overlap out of order.
 */
export function createTurnBatcher<T, R>(flush: (items: T[]) => Promise<R[]>): (item: T) => Promise<R> {
  let pending: Array<{ item: T; resolve: (result: R) => void; reject: (error: unknown) => void }> = [];
  let scheduled = false;
  const run = async () => {
    const batch = pending;
    pending = [];
    scheduled = false;
    try {
      const results = await flush(batch.map(({ item }) => item));
      batch.forEach(({ resolve }, index) => resolve(results[index]!));
    } catch (error) {
      for (const { reject } of batch) reject(error);
    }
  };
  return (item) =>
    new Promise<R>((resolve, reject) => {
      pending.push({ item, resolve, reject });
      if (!scheduled) {
        scheduled = true;
        setImmediate(() => void run());
      }
    });
}
