import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../runtime/logger';
import type { Publisher } from '../../runtime/kafka';
import { startPoller } from '../../runtime/poller';
import { createTurnBatcher } from '../../runtime/turn-batcher';
import type { Outbox, PaymentStore } from '../state/store';

/**
 * Sends stored outbox messages to Kafka and forgets them once acknowledged.
 * `send` is called right after a state change; if Kafka is down or the
 * instance dies first, the relay (every instance runs one) sends the overdue
 * outboxes later, in the order they were decided.
 */
export function createOutboxSender(store: PaymentStore, publisher: Publisher, logger: Logger, registry: Registry) {
  const relayed = new Counter({
    name: 'outbox_relayed_messages_total',
    help: 'Messages the outbox relay sent because their first send failed or never happened',
    registers: [registry],
  });
  const failures = new Counter({
    name: 'outbox_send_failures_total',
    help: 'Failed sends of outbox messages (they stay stored and are retried by the relay)',
    registers: [registry],
  });

  const extendedDeadlines = new Counter({
    name: 'payment_deadlines_extended_total',
    help: 'Attempt deadlines moved later because the request reached Kafka late (outage, crash before the send, publish backlog): our delay, not the gateway\'s',
    registers: [registry],
  });

  // The outboxes whose messages went out in one produce request are acknowledged in the same turn: one
  // Redis command forgets them all (docs/benchmarks/efficiency.md), not one command per payment.
  const clear = createTurnBatcher((outboxes: Outbox[]) => store.clearOutboxes(outboxes));
  const deliver = async (outbox: Outbox) => {
    await publisher.publishAll(outbox.messages);
    for (const { attemptId, delayMs } of await clear(outbox)) {
      extendedDeadlines.inc();
      logger.warn({ paymentId: outbox.paymentId, attemptId, delayMs }, 'attempt request reached Kafka late: its deadline moves by the delay');
    }
  };

  return {
    /** Sends right away; a failure is logged, not thrown: the messages are stored and the relay retries them. */
    async send(outbox: Outbox): Promise<boolean> {
      if (outbox.messages.length === 0) return true;
      try {
        await deliver(outbox);
        return true;
      } catch (error) {
        failures.inc();
        logger.error({ err: error, paymentId: outbox.paymentId }, 'sending outbox failed; the relay will retry');
        return false;
      }
    },

    startRelay(options: { pollMs: number; leaseMs: number; clock: () => Date; batchSize?: number }): () => Promise<void> {
      return startPoller(
        'outbox relay',
        options.pollMs,
        async () => {
          const overdue = await store.claimOverdueOutboxes(options.clock().getTime(), options.leaseMs, options.batchSize ?? 200);
          for (const outbox of overdue) {
            await deliver(outbox);
            relayed.inc(outbox.messages.length);
            logger.warn({ paymentId: outbox.paymentId, messages: outbox.messages.length }, 'outbox relayed');
          }
        },
        logger,
      );
    },
  };
}
export type OutboxSender = ReturnType<typeof createOutboxSender>;
