import type { Redis } from 'ioredis';
import type { Logger } from '../../runtime/logger';
import { isTerminal, type Payment } from '../state/payment';
import type { PaymentStore } from '../state/store';

/** The requests waiting on one payment's channel, and the subscription they all wait for before their first read. */
interface Channel {
  wakes: Set<() => void>;
  subscribed: Promise<void>;
}

/**
 * Lets a request wait for its payment's terminal state, whichever instance
 * processes the outcome: the store publishes on the payment's own Redis
 * channel as the terminal state is stored (store.terminalChannelOf), and an
 * instance subscribes to that channel only while a request waits on it. So
 * no instance reads a message for a payment nobody waits on (before, every
 * instance read one for every payment: with k instances, k per payment).
 * Subscribing before reading the state means a change between the two is
 * not missed.
 */
export function createTerminalWaits(subscriber: Redis, store: PaymentStore, logger: Logger) {
  const channels = new Map<string, Channel>();
  subscriber.on('message', (channel: string) => {
    for (const wake of channels.get(channel)?.wakes ?? []) wake();
  });

  /**
   * One SUBSCRIBE per payment however many requests wait on it; every waiter awaits it (within its own limit). A
   * failed subscribe is logged and forgotten, so the next wait on the payment subscribes again; the waits that
   * joined it run to their end, as when a published message is lost.
   */
  const join = (name: string, paymentId: string, wake: () => void): Channel => {
    const existing = channels.get(name);
    if (existing) {
      existing.wakes.add(wake);
      return existing;
    }
    const channel: Channel = { wakes: new Set([wake]), subscribed: Promise.resolve() };
    channel.subscribed = subscriber.subscribe(name).then(
      () => undefined,
      (error: unknown) => {
        if (channels.get(name) === channel) channels.delete(name);
        logger.warn({ err: error, paymentId }, 'subscribing to a terminal channel failed: the wait runs to its end');
      },
    );
    channels.set(name, channel);
    return channel;
  };
  const leave = (name: string, paymentId: string, channel: Channel, wake: () => void) => {
    channel.wakes.delete(wake);
    // A channel whose subscribe failed is no longer the payment's: nothing to unsubscribe, and a newer one stays.
    if (channel.wakes.size > 0 || channels.get(name) !== channel) return;
    channels.delete(name);
    // Sent after the SUBSCRIBE on the same connection, so Redis always sees the two in order.
    subscriber.unsubscribe(name).catch((error: unknown) => logger.warn({ err: error, paymentId }, 'unsubscribing from a terminal channel failed'));
  };

  return {
    /** The payment once terminal, or as it is when `timeoutMs` (from the call) runs out. */
    async waitForTerminal(paymentId: string, timeoutMs: number): Promise<Payment | undefined> {
      let wake: () => void = () => undefined;
      const changed = new Promise<void>((resolve) => (wake = resolve));
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      const name = store.terminalChannelOf(paymentId);
      const channel = join(name, paymentId, wake);
      try {
        // Within the wait's limit: while the subscriber connection is down, ioredis holds the SUBSCRIBE until it is back.
        await Promise.race([channel.subscribed, expired]);
        const current = await store.get(paymentId);
        if (!current || isTerminal(current.payment.status)) return current?.payment;
        await Promise.race([changed, expired]);
        return (await store.get(paymentId))?.payment;
      } finally {
        clearTimeout(timer);
        leave(name, paymentId, channel, wake);
      }
    },
  };
}
export type TerminalWaits = ReturnType<typeof createTerminalWaits>;
