import { randomUUID } from 'node:crypto';
import type { Logger } from '../../runtime/logger';
import type { Publisher } from '../../runtime/kafka';
import type { TopicNames } from '../../topics/names';
import type { AttemptCommand, AttemptRequested, PaymentStatusChanged } from '../../topics/schemas';
import type { Attempt, Effect, Payment } from '../state/payment';
import type { OrchestratorMetrics } from '../metrics';

export interface EffectDeps {
  publisher: Publisher;
  topics: TopicNames;
  logger: Logger;
  metrics: OrchestratorMetrics;
  clock: () => Date;
  /** Told of every attempt sent, so a half-open breaker lets only one trial through. */
  onDispatched: (gatewayId: string) => void;
}

/**
 * Carries out what the state machine decided, after the new state is stored:
 * dispatch attempts to gateways, publish the payment's status, and send
 * cancel or compensate commands. Storing first means a crash here leaves a
 * stored deadline that another instance will act on, never a dispatch with no
 * record of it.
 */
export function createEffectRunner({ publisher, topics, logger, metrics, clock, onDispatched }: EffectDeps) {
  const envelope = <T extends string>(type: T) => ({
    eventId: randomUUID(),
    type,
    occurredAt: clock().toISOString(),
    schemaVersion: 1 as const,
  });

  const dispatch = (payment: Payment, attempt: Attempt) => {
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
    onDispatched(attempt.gatewayId);
    metrics.attemptsDispatched.inc({ gateway: attempt.gatewayId, attempt: attempt.number > 1 ? 'failover' : 'first' });
    logger.info({ paymentId: payment.id, attemptId: attempt.id, gatewayId: attempt.gatewayId, attempt: attempt.number }, 'attempt dispatched');
    return publisher.publish(topics.gatewayRequests(attempt.gatewayId), [{ key: payment.id, value: request }]);
  };

  const command = (payment: Payment, attempt: Attempt, kind: AttemptCommand['command'], reason: string) => {
    const message: AttemptCommand = {
      ...envelope('attempt.command'),
      command: kind,
      paymentId: payment.id,
      attemptId: attempt.id,
      gatewayId: attempt.gatewayId,
      reason,
    };
    if (kind === 'compensate') metrics.compensations.inc({ gateway: attempt.gatewayId });
    logger.warn({ paymentId: payment.id, attemptId: attempt.id, gatewayId: attempt.gatewayId, command: kind, reason }, `attempt ${kind} sent`);
    return publisher.publish(topics.gatewayRequests(attempt.gatewayId), [{ key: payment.id, value: message }]);
  };

  const publishStatus = (payment: Payment) => {
    const current = payment.attempts.at(-1);
    const settled = payment.attempts.find((attempt) => attempt.status === 'succeeded');
    const attempt = settled ?? current;
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
    if (payment.status !== 'PENDING') {
      metrics.paymentsCompleted.inc({ type: payment.type, region: payment.region, currency: payment.currency, status: payment.status });
      metrics.paymentDuration.observe(
        { type: payment.type, gateway: attempt?.gatewayId ?? 'none', status: payment.status },
        (Date.parse(payment.updatedAt) - Date.parse(payment.createdAt)) / 1000,
      );
    }
    logger.info({ paymentId: payment.id, attemptId: attempt?.id, gatewayId: attempt?.gatewayId, status: payment.status, reason: payment.reason }, 'payment status');
    return publisher.publish(topics.paymentStatus, [{ key: payment.id, value: event }]);
  };

  return async function runEffects(payment: Payment, effects: Effect[]): Promise<void> {
    await Promise.all(
      effects.map((effect) => {
        switch (effect.type) {
          case 'dispatch':
            return dispatch(payment, effect.attempt);
          case 'publish-status':
            return publishStatus(payment);
          case 'cancel':
            return command(payment, effect.attempt, 'cancel', 'another attempt settled the payment');
          case 'compensate':
            return command(payment, effect.attempt, 'compensate', 'late success after the payment settled');
          case 'flag-review':
            logger.critical(
              { paymentId: payment.id, attemptId: effect.attempt.id, gatewayId: effect.attempt.gatewayId },
              'withdrawal flagged for review: the timed-out gateway never confirmed the cancel',
            );
            return Promise.resolve();
        }
      }),
    );
  };
}
export type EffectRunner = ReturnType<typeof createEffectRunner>;
