import type { Redis } from 'ioredis';
import type { Logger } from '../../runtime/logger';
import { isTerminal, type Payment } from '../state/payment';
import type { PaymentStore } from '../state/store';

/**
 * Lets a request wait for its payment's terminal state, whichever instance
 * processes the outcome: the store publishes the payment id on a Redis
 * channel as the terminal state is stored, and every instance listens.
 * Subscribing before reading the state means a change between the two is
 * not missed.
 */
export async function createTerminalWaits(subscriber: Redis, store: PaymentStore, logger: Logger) {
  const waiters = new Map<string, Set<() => void>>();
  subscriber.on('message', (_channel: string, paymentId: string) => {
    for (const wake of waiters.get(paymentId) ?? []) wake();
  });
  await subscriber.subscribe(store.terminalChannel);
  logger.debug({ channel: store.terminalChannel }, 'listening for terminal payments');

  return {
    /** The payment once terminal, or as it is when `timeoutMs` runs out. */
    async waitForTerminal(paymentId: string, timeoutMs: number): Promise<Payment | undefined> {
      let wake: () => void = () => undefined;
      const changed = new Promise<void>((resolve) => (wake = resolve));
      const set = waiters.get(paymentId) ?? new Set();
      set.add(wake);
      waiters.set(paymentId, set);
      let timer: NodeJS.Timeout | undefined;
      try {
        const current = await store.get(paymentId);
        if (!current || isTerminal(current.payment.status)) return current?.payment;
        await Promise.race([changed, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
        return (await store.get(paymentId))?.payment;
      } finally {
        clearTimeout(timer);
        set.delete(wake);
        if (set.size === 0) waiters.delete(paymentId);
      }
    },
  };
}
export type TerminalWaits = Awaited<ReturnType<typeof createTerminalWaits>>;
