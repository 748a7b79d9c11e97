import { randomUUID } from 'node:crypto';
import type { Logger } from '../../runtime/logger';
import type { TopicMessage } from '../../runtime/kafka';
import type { TopicNames } from '../../topics/names';
import type { AttemptCommand, AttemptRequested, PaymentStatusChanged } from '../../topics/schemas';
import type { Attempt, Effect, Payment } from '../state/payment';
import type { OrchestratorMetrics } from '../metrics';

export interface EffectDeps {
  topics: TopicNames;
  logger: Logger;
  metrics: OrchestratorMetrics;
  clock: () => Date;
}

/**
 * What the state machine decided, in two halves: the Kafka messages the
 * effects stand for (built before the state is stored, so they are stored
 * with it in the outbox), and the logs and metrics of the change (once it is
 * stored, so a lost compare-and-set race counts nothing).
 */
export function createEffects({ topics, logger, metrics, clock }: EffectDeps) {
  const envelope = <T extends string>(type: T) => ({
    eventId: randomUUID(),
    type,
    occurredAt: clock().toISOString(),
    schemaVersion: 1 as const,
  });

  const dispatch = (payment: Payment, attempt: Attempt): TopicMessage => {
    const request: AttemptRequested = {
      ...envelope('attempt.requested'),
      paymentId: payment.id,
      attemptId: attempt.id,
      gatewayId: attempt.gatewayId,
      paymentType: payment.type,
      accountId: payment.accountId,
      amount: payment.amount,
      currency: payment.currency,
      region: payment.region,
      deadline: attempt.deadline,
    };
    return { topic: topics.gatewayRequests(attempt.gatewayId), key: payment.id, value: request };
  };

  const command = (payment: Payment, attempt: Attempt, kind: AttemptCommand['command'], reason: string): TopicMessage => {
    const message: AttemptCommand = {
      ...envelope('attempt.command'),
      // A compensate command sent again after its deadline is the same command, not a second refund: one id
      // per attempt, so a gateway that de-duplicates on it voids/refunds once however many times it is sent.
      ...(kind === 'compensate' ? { eventId: `${attempt.id}:compensate` } : {}),
      command: kind,
      paymentId: payment.id,
      attemptId: attempt.id,
      gatewayId: attempt.gatewayId,
      reason,
    };
    return { topic: topics.gatewayRequests(attempt.gatewayId), key: payment.id, value: message };
  };

  /** The attempt a status event names: the one that settled it, else the latest. */
  const statusAttempt = (payment: Payment) => payment.attempts.find((attempt) => attempt.status === 'succeeded') ?? payment.attempts.at(-1);

  const status = (payment: Payment): TopicMessage => {
    const attempt = statusAttempt(payment);
    const event: PaymentStatusChanged = {
      ...envelope('payment.status'),
      paymentId: payment.id,
      status: payment.status,
      sequence: payment.statusSequence,
      paymentType: payment.type,
      accountId: payment.accountId,
      amount: payment.amount,
      currency: payment.currency,
      region: payment.region,
      ...(attempt ? { attemptId: attempt.id, gatewayId: attempt.gatewayId } : {}),
      ...(payment.reason === undefined ? {} : { reason: payment.reason }),
    };
    return { topic: topics.paymentStatus, key: payment.id, value: event };
  };

  return {
    messagesFor(payment: Payment, effects: readonly Effect[]): TopicMessage[] {
      return effects.flatMap((effect): TopicMessage[] => {
        switch (effect.type) {
          case 'dispatch':
            return [dispatch(payment, effect.attempt)];
          case 'publish-status':
            return [status(payment)];
          case 'cancel':
            return [command(payment, effect.attempt, 'cancel', 'timed out, or another attempt settled the payment')];
          case 'compensate': {
            const sent = effect.attempt.compensationsSent ?? 1;
            const why = sent > 1 ? `late success after the payment settled; not confirmed yet, sent again (${sent})` : 'late success after the payment settled';
            return [command(payment, effect.attempt, 'compensate', why)];
          }
          case 'flag-review':
            return [];
        }
      });
    },

    observe(payment: Payment, effects: readonly Effect[]): void {
      for (const effect of effects) {
        const ids = { paymentId: payment.id, attemptId: 'attempt' in effect ? effect.attempt.id : undefined, gatewayId: 'attempt' in effect ? effect.attempt.gatewayId : undefined };
        switch (effect.type) {
          case 'dispatch':
            // Counted here, once per stored decision, rather than each time selection ran.
            for (const { gatewayId, reason } of effect.attempt.routing.excluded) {
              if (reason === 'rate-limited') metrics.rateLimited.inc({ gateway: gatewayId });
            }
            metrics.attemptsDispatched.inc({ gateway: effect.attempt.gatewayId, attempt: effect.attempt.number > 1 ? 'failover' : 'first' });
            logger.info({ ...ids, attempt: effect.attempt.number }, 'attempt dispatched');
            break;
          case 'publish-status': {
            const attempt = statusAttempt(payment);
            if (payment.status !== 'PENDING') {
              metrics.paymentsCompleted.inc({ type: payment.type, region: payment.region, currency: payment.currency, status: payment.status });
              metrics.paymentDuration.observe(
                { type: payment.type, gateway: attempt?.gatewayId ?? 'none', status: payment.status },
                (Date.parse(payment.updatedAt) - Date.parse(payment.createdAt)) / 1000,
              );
            }
            logger.info({ paymentId: payment.id, attemptId: attempt?.id, gatewayId: attempt?.gatewayId, status: payment.status, reason: payment.reason }, 'payment status');
            break;
          }
          case 'cancel':
            logger.warn(ids, 'attempt cancel sent');
            break;
          case 'compensate': {
            const sent = effect.attempt.compensationsSent ?? 1;
            // Counted once per late success; re-sends have their own counter (results/apply-outcome.ts learn).
            if (sent > 1) {
              logger.warn({ ...ids, sent, deadline: effect.attempt.deadline }, 'compensation not confirmed in time: compensate command sent again');
              break;
            }
            metrics.compensations.inc({ gateway: effect.attempt.gatewayId });
            logger.critical(ids, 'late success after the payment settled: compensation sent');
            break;
          }
          case 'flag-review':
            if (payment.review?.reason === 'compensation-unconfirmed' && payment.review.attemptId === effect.attempt.id) {
              logger.critical(
                { ...ids, sent: effect.attempt.compensationsSent },
                'payment flagged for review: the gateway never confirmed the void/refund of a late success; the customer may have been paid twice',
              );
            } else {
              logger.critical(ids, 'withdrawal flagged for review: the timed-out gateway never confirmed the cancel');
            }
            break;
        }
      }
    },
  };
}
export type Effects = ReturnType<typeof createEffects>;
