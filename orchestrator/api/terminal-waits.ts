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
 * instance read one per payment, about 2 µs each, and k instances k).
 * Subscribing before reading the state means a change between the two is
 * not missed.
 */
export function createTerminalWaits(subscriber: Redis, store: PaymentStore, logger: Logger) {
  const channels = new Map<string, Channel>();
  subscriber.on('message', (channel: string) => {
    for (const wake of channels.get(channel)?.wakes ?? []) wake();
  });

  /**
   * One SUBSCRIBE per payment however many requests wait on it; every waiter awaits it. A failed subscribe (Redis
   * unreachable) is logged and the wait runs to its end, as when a published message is lost.
   */
  const join = (name: string, paymentId: string, wake: () => void): Channel => {
    let channel = channels.get(name);
    if (!channel) {
      const subscribed = subscriber.subscribe(name).then(
        () => undefined,
        (error: unknown) => logger.warn({ err: error, paymentId }, 'subscribing to a terminal channel failed: the wait runs to its end'),
      );
      channel = { wakes: new Set(), subscribed };
      channels.set(name, channel);
    }
    channel.wakes.add(wake);
    return channel;
  };
  const leave = (name: string, paymentId: string, channel: Channel, wake: () => void) => {
    channel.wakes.delete(wake);
    if (channel.wakes.size > 0) return;
    channels.delete(name);
    // Sent after the SUBSCRIBE on the same connection, so Redis always sees the two in order.
    subscriber.unsubscribe(name).catch((error: unknown) => logger.warn({ err: error, paymentId }, 'unsubscribing from a terminal channel failed'));
  };

  return {
    /** The payment once terminal, or as it is when `timeoutMs` runs out. */
    async waitForTerminal(paymentId: string, timeoutMs: number): Promise<Payment | undefined> {
      let wake: () => void = () => undefined;
      const changed = new Promise<void>((resolve) => (wake = resolve));
      const name = store.terminalChannelOf(paymentId);
      const channel = join(name, paymentId, wake);
      let timer: NodeJS.Timeout | undefined;
      try {
        await channel.subscribed;
        const current = await store.get(paymentId);
        if (!current || isTerminal(current.payment.status)) return current?.payment;
        await Promise.race([changed, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
        return (await store.get(paymentId))?.payment;
      } finally {
        clearTimeout(timer);
        leave(name, paymentId, channel, wake);
      }
    },
  };
}
export type TerminalWaits = ReturnType<typeof createTerminalWaits>;
