import type { Logger } from '../../runtime/logger';
import { decide, type Attempt, type Decision, type DecisionContext, type Outcome, type Payment } from '../state/payment';
import type { PaymentStore } from '../state/store';
import type { Effects } from '../dispatch/effects';
import type { OutboxSender } from '../dispatch/outbox';
import { decideWithinBudget } from '../dispatch/budget';
import type { Router } from '../routing/router';
import type { OrchestratorMetrics } from '../metrics';
import type { GatewayHealth } from '../health/gateway-health';
import type { AttemptStats } from '../health/attempt-stats';
import { classifyFailure } from '../state/reasons';

export interface ApplyOutcomeDeps {
  store: PaymentStore;
  effects: Effects;
  outbox: OutboxSender;
  router: Router;
  decisionContext: DecisionContext;
  /** The gateway health model (breaker, outlier ejection and weights: health/gateway-health.ts). */
  health: Pick<GatewayHealth, 'record'>;
  attemptStats: Pick<AttemptStats, 'record'>;
  metrics: OrchestratorMetrics;
  logger: Logger;
}

/** `refused`: a review resolution for a payment that is not (or no longer) in review for that attempt. */
export type ApplyResult = 'applied' | 'unchanged' | 'refused' | 'unknown-payment' | 'unknown-attempt';

/** More than this many lost compare-and-set races in a row means something is wrong, not busy. */
const MAX_CONFLICTS = 20;

/**
 * Applies one attempt outcome (a gateway result, a command result or an
 * expired deadline) to its payment, exactly once whichever instance gets it:
 * read (this instance's last written copy when it has one, store.latest),
 * decide, and store with compare-and-set; a concurrent change makes it
 * read and decide again, and an outcome that changes nothing (a duplicate)
 * stores and sends nothing. Health (breaker, weights) learns from the outcome
 * only once it is stored, so a duplicate is not counted twice.
 */
export function createOutcomeApplier(deps: ApplyOutcomeDeps) {
  const { store, effects, outbox, router, decisionContext, metrics, logger } = deps;
  return async function applyOutcome(paymentId: string, outcome: Outcome): Promise<ApplyResult> {
    let readStored = false;
    for (let conflicts = 0; conflicts < MAX_CONFLICTS; conflicts++) {
      const stored = readStored ? await store.get(paymentId) : await store.latest(paymentId);
      const attempt = stored?.payment.attempts.find((candidate) => candidate.id === outcome.attemptId);
      // Fields on each line rather than a child logger: building a child per outcome cost more than the lines.
      const ids = { paymentId, attemptId: outcome.attemptId, gatewayId: attempt?.gatewayId };
      if (!stored) {
        metrics.outcomesIgnored.inc({ why: 'unknown-payment' });
        logger.warn(Object.assign(ids, { outcome: outcome.kind }), 'outcome for an unknown payment');
        return 'unknown-payment';
      }
      const decision = await decideWithinBudget(
        router,
        () => decide(stored.payment, outcome, decisionContext),
        (result: Decision) => (result.changed ? result.effects : []),
      );
      if (!decision.changed) {
        // Decided on this instance's copy, which another instance may have changed since (a failover to an attempt
        // the copy does not know, a review it has not seen): "nothing to do" is believed only of what is stored.
        if (stored.copy) {
          readStored = true;
          continue;
        }
        metrics.outcomesIgnored.inc({ why: decision.why });
        logger.info(Object.assign(ids, { outcome: outcome.kind, why: decision.why }), 'outcome changed nothing');
        if (decision.why === 'not-in-review' || decision.why === 'decision-does-not-fit') return 'refused';
        return decision.why === 'unknown-attempt' ? 'unknown-attempt' : 'unchanged';
      }
      const written = await store.update(stored, decision.payment, effects.messagesFor(decision.payment, decision.effects));
      if (!written) continue;
      if (attempt) learn(deps, stored.payment, decision.payment, attempt, outcome);
      // The one line of a stored outcome: the status it published (and why, when terminal) is in it.
      logger.info(
        Object.assign(ids, { outcome: outcome.kind, status: decision.payment.status, reason: decision.payment.reason, effects: decision.effects.map((effect) => effect.type) }),
        'outcome applied',
      );
      effects.observe(decision.payment, decision.effects);
      // Not awaited: the messages are stored with the change, so the relay sends them if this send fails or the
      // process dies. The consumer moves on to the next result instead of waiting a Kafka round trip per outcome,
      // and the publisher keeps send order, so one payment's messages still leave in the order they were decided.
      void outbox.send(written);
      return 'applied';
    }
    throw new Error(`payment ${paymentId}: gave up after ${MAX_CONFLICTS} concurrent changes`);
  };
}
export type OutcomeApplier = ReturnType<typeof createOutcomeApplier>;

/**
 * The gateway's time for an attempt, in ms: from when it could see the request (the request's Kafka time the
 * worker reports as `requestedAt`, or our dispatch decision when it does not say, whichever is later) to when its
 * answer reached Kafka (results/consumer.ts answeredAt). So neither a request that waited in our outbox (a
 * publish backlog, a broker outage, a killed instance's leftovers sent by the relay) nor an answer that waited
 * for us to read it is charged to the gateway's health (issue 11). A `requestedAt` after the answer (clocks
 * apart) is ignored.
 */
export function gatewayLatencyMs(attempt: Pick<Attempt, 'dispatchedAt'>, outcome: Pick<Outcome, 'at'> & { requestedAt?: string }): number {
  const answered = Date.parse(outcome.at);
  const requested = outcome.requestedAt === undefined ? Number.NaN : Date.parse(outcome.requestedAt);
  const start = Number.isFinite(requested) && requested <= answered ? Math.max(requested, Date.parse(attempt.dispatchedAt)) : Date.parse(attempt.dispatchedAt);
  return Math.max(0, answered - start);
}

/** Feeds the gateway health model, attempt stats and metrics from an outcome that changed the payment. */
function learn(deps: ApplyOutcomeDeps, before: Payment, after: Payment, attempt: Attempt, outcome: Outcome): void {
  const { health, attemptStats, metrics } = deps;
  const gateway = attempt.gatewayId;
  const latencyMs = gatewayLatencyMs(attempt, outcome);
  const answered = attempt.status === 'in-flight';
  if (outcome.kind === 'success' || outcome.kind === 'failure' || (outcome.kind === 'timeout' && answered)) {
    const technicalFailure = outcome.kind === 'timeout' || (outcome.kind === 'failure' && classifyFailure(outcome.reasonCode) === 'retryable');
    // A late answer still says the gateway works (or not), so it feeds health; only the first timeout counts as one.
    // A timeout has no latency to give: it counts as a failure (in the streak and the window), not as slowness.
    health.record(gateway, technicalFailure ? 'technical-failure' : 'ok', outcome.kind === 'timeout' ? undefined : latencyMs);
    if (outcome.kind !== 'timeout') metrics.resultLatency.observe({ gateway }, latencyMs / 1000);
    const outcomeClass = outcome.kind === 'failure' ? classifyFailure(outcome.reasonCode) : outcome.kind;
    metrics.attemptOutcomes.inc({ gateway, outcome: outcomeClass });
    attemptStats.record(gateway, outcomeClass, Date.parse(outcome.at));
  }
  if (outcome.kind === 'success' && (!answered || before.status !== 'PENDING')) {
    metrics.lateSuccesses.inc({ gateway, result: after.status === 'SUCCESS' && before.status === 'PENDING' ? 'settled' : 'compensated' });
  }
  if (outcome.kind === 'unreadable') metrics.resultsUnreadable.inc({ gateway });
  if (after.attempts.length > before.attempts.length) metrics.failovers.inc({ gateway, cause: outcome.kind });
  // Each review reason has its own counter: payments_flagged_for_review_total keeps meaning "a withdrawal's cancel".
  if (after.review && !before.review) {
    if (after.review.reason === 'compensation-unconfirmed') metrics.compensationsUnconfirmed.inc({ gateway });
    else metrics.flaggedForReview.inc({ gateway });
  }
  if (outcome.kind === 'timeout' && attempt.status === 'compensating') {
    const resent = after.attempts.find((candidate) => candidate.id === attempt.id);
    if ((resent?.compensationsSent ?? 0) > (attempt.compensationsSent ?? 1)) metrics.compensationResends.inc({ gateway });
  }
}
