import type { Logger } from '../../runtime/logger';
import { decide, type DecisionContext, type Outcome } from '../state/payment';
import type { PaymentStore } from '../state/store';
import type { EffectRunner } from '../dispatch/effects';
import type { OrchestratorMetrics } from '../metrics';

export interface ApplyOutcomeDeps {
  store: PaymentStore;
  runEffects: EffectRunner;
  decisionContext: DecisionContext;
  metrics: OrchestratorMetrics;
  logger: Logger;
}

/** More than this many lost compare-and-set races in a row means something is wrong, not busy. */
const MAX_CONFLICTS = 20;

/**
 * Applies one attempt outcome (a gateway result or an expired deadline) to
 * its payment, exactly once whichever instance gets it: read, decide, and
 * store with compare-and-set; a concurrent change makes it read and decide
 * again, and an outcome that changes nothing (a duplicate) stores and sends
 * nothing.
 */
export function createOutcomeApplier({ store, runEffects, decisionContext, metrics, logger }: ApplyOutcomeDeps) {
  return async function applyOutcome(paymentId: string, outcome: Outcome): Promise<'applied' | 'unchanged' | 'unknown-payment'> {
    for (let conflicts = 0; conflicts < MAX_CONFLICTS; conflicts++) {
      const stored = await store.get(paymentId);
      const gatewayId = stored?.payment.attempts.find((attempt) => attempt.id === outcome.attemptId)?.gatewayId ?? 'unknown';
      const log = logger.child({ paymentId, attemptId: outcome.attemptId, gatewayId });
      if (!stored) {
        metrics.outcomesIgnored.inc({ why: 'unknown-payment' });
        log.warn({ outcome: outcome.kind }, 'outcome for an unknown payment');
        return 'unknown-payment';
      }
      const decision = decide(stored.payment, outcome, decisionContext);
      if (!decision.changed) {
        metrics.outcomesIgnored.inc({ why: decision.why });
        log.info({ outcome: outcome.kind, why: decision.why }, 'outcome changed nothing');
        return 'unchanged';
      }
      if (await store.update(stored, decision.payment)) {
        metrics.attemptOutcomes.inc({ gateway: gatewayId, outcome: outcome.kind });
        log.info({ outcome: outcome.kind, status: decision.payment.status }, 'outcome applied');
        await runEffects(decision.payment, decision.effects);
        return 'applied';
      }
    }
    throw new Error(`payment ${paymentId}: gave up after ${MAX_CONFLICTS} concurrent changes`);
  };
}
export type OutcomeApplier = ReturnType<typeof createOutcomeApplier>;
