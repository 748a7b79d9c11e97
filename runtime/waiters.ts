/** Someone waiting for a condition that the owner of `waiters` checks as it makes progress, and wakes. */
export type Waiter<T> = T & { wake: () => void };

/**
 * Adds a waiter with `fields` (what it waits for) to `waiters`: resolves true
 * when the owner calls its `wake`, false after `timeoutMs`; either way it
 * leaves the set.
 */
export function waitInSet<T extends object>(waiters: Set<Waiter<T>>, fields: T, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const waiter: Waiter<T> = Object.assign({}, fields, {
      wake: () => {
        clearTimeout(timer);
        waiters.delete(waiter);
        resolve(true);
      },
    });
    const timer = setTimeout(() => {
      waiters.delete(waiter);
      resolve(false);
    }, timeoutMs);
    waiters.add(waiter);
  });
}
