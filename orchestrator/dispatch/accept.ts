import { hash, randomUUID } from 'node:crypto';
import { AppError } from '../../runtime/errors';
import type { Logger } from '../../runtime/logger';
import type { PaymentRequest } from '../api/payment-request';
import type { Router } from '../routing/router';
import type { RoutingDecision } from '../routing/select';
import { createPayment, type Payment } from '../state/payment';
import type { PaymentStore, ScopedIdempotencyKey } from '../state/store';
import type { Effects } from './effects';
import type { OutboxSender } from './outbox';
import { decideWithinBudget } from './budget';
import type { OrchestratorMetrics } from '../metrics';

export interface AcceptDeps {
  store: PaymentStore;
  router: Router;
  effects: Effects;
  outbox: OutboxSender;
  clock: () => Date;
  newId: () => string;
  metrics: OrchestratorMetrics;
  logger: Logger;
}

/**
 * SHA-256 (hex) of the request as parsed, so key order and whitespace do not make two equal requests differ.
 * `crypto.hash` (Node ≥ 20.12), not `createHash`: one call, without building a Hash stream object per payment.
 */
export function requestHash(request: PaymentRequest): string {
  const canonical = JSON.stringify([request.type, request.accountId, request.amount, request.currency, request.region]);
  return hash('sha256', canonical, 'hex');
}

/**
 * Accepts a payment: route it, store it as PENDING with its first attempt and
 * deadline (atomically with its idempotency key), then dispatch. A repeated
 * key with the same request returns the payment it created; with another
 * request it is refused. Keys are scoped to the caller (the token subject):
 * another client's same key is a new payment.
 */
export function createAcceptPayment({ store, router, effects: effectsOf, outbox, clock, newId, metrics, logger }: AcceptDeps) {
  return async function acceptPayment(request: PaymentRequest, idempotencyKey: ScopedIdempotencyKey): Promise<{ payment: Payment; replayed: boolean }> {
    const hash = requestHash(request);
    const now = clock();
    let decided: ReturnType<typeof createPayment>;
    try {
      decided = await decideWithinBudget(
        router,
        () => {
          const routing = router.route(request, new Set());
          if (routing.chosen === null) throw refusal(request, routing.excluded);
          return createPayment({ id: newId(), ...request }, { ...routing, chosen: routing.chosen }, randomUUID(), router.timeoutMsOf(routing.chosen), now);
        },
        (created) => created.effects,
      );
    } catch (error) {
      // Routing is decided before the key is looked up (that costs nothing on the usual path);
      // a repeated request must still get its payment when no gateway is usable now.
      const earlier = error instanceof AppError ? await store.findIdempotent(idempotencyKey) : undefined;
      if (!earlier) throw error;
      return { payment: await replay(earlier.paymentId, earlier.requestHash), replayed: true };
    }
    const { payment, effects } = decided;
    const created = await store.create(payment, idempotencyKey, hash, effectsOf.messagesFor(payment, effects));
    if (!created.created) return { payment: await replay(created.paymentId, created.requestHash), replayed: true };

    metrics.paymentsAccepted.inc({ type: payment.type, region: payment.region, currency: payment.currency });
    // The one line of a payment's acceptance: its first attempt's dispatch and its PENDING status are in it.
    logger.info({ paymentId: payment.id, attemptId: payment.attempts[0]?.id, gatewayId: payment.attempts[0]?.gatewayId, type: payment.type, status: payment.status }, 'payment accepted');
    effectsOf.observe(payment, effects);
    // Stored with its outbox, so accepted: the answer does not wait for Kafka. The send goes out with other
    // payments' in the next produce request, and if Kafka does not take it (a broker outage), the relay sends
    // it later; the client gets its 202 either way instead of waiting out the producer's retries.
    void outbox.send(created.outbox);
    return { payment, replayed: false };

    function refusal(request: PaymentRequest, excluded: RoutingDecision['excluded']): AppError {
      const reasons = excluded.map((exclusion) => exclusion.reason);
      for (const { gatewayId, reason } of excluded) if (reason === 'rate-limited') metrics.rateLimited.inc({ gateway: gatewayId });
      // Gateways exist but are momentarily unusable: worth retrying shortly, unlike a region nobody serves.
      if (reasons.includes('circuit-open') || reasons.includes('rate-limited')) {
        metrics.paymentsRejected.inc({ reason: 'gateways_busy' });
        return new AppError(503, 'gateways_busy', `every gateway serving region ${request.region} is over its rate limit or has an open circuit; retry shortly`, 'region', 1);
      }
      metrics.paymentsRejected.inc({ reason: 'no_gateway' });
      return new AppError(422, 'no_gateway', `no available gateway serves ${request.type} in ${request.currency} for region ${request.region}`, 'region');
    }

    async function replay(paymentId: string, storedHash: string): Promise<Payment> {
      if (storedHash !== hash) {
        metrics.paymentsRejected.inc({ reason: 'idempotency_conflict' });
        throw new AppError(422, 'idempotency_conflict', 'this Idempotency-Key was used with a different request', 'Idempotency-Key');
      }
      const existing = await store.get(paymentId);
      if (!existing) throw new Error(`idempotency key points at missing payment ${paymentId}`);
      return existing.payment;
    }
  };
}
export type AcceptPayment = ReturnType<typeof createAcceptPayment>;
