import { Counter, Histogram, type Registry } from 'prom-client';

/** The orchestrator's own metrics; label sets stay bounded (no payment or account ids). */
export function createOrchestratorMetrics(registry: Registry) {
  return {
    paymentsAccepted: new Counter({
      name: 'payments_accepted_total',
      help: 'Payments accepted (202) by type, region and currency',
      labelNames: ['type', 'region', 'currency'],
      registers: [registry],
    }),
    paymentsRejected: new Counter({
      name: 'payments_rejected_total',
      help: 'Payment requests refused before anything was written, by reason',
      labelNames: ['reason'],
      registers: [registry],
    }),
    paymentsCompleted: new Counter({
      name: 'payments_completed_total',
      help: 'Payments that reached a terminal status, by type, region, currency and status',
      labelNames: ['type', 'region', 'currency', 'status'],
      registers: [registry],
    }),
    paymentDuration: new Histogram({
      name: 'payment_duration_seconds',
      help: 'Accept to terminal status, in seconds, by type, settling gateway and status',
      labelNames: ['type', 'gateway', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    attemptsDispatched: new Counter({
      name: 'payment_attempts_dispatched_total',
      help: 'Attempts sent to gateways, by gateway and whether it was a failover',
      labelNames: ['gateway', 'attempt'],
      registers: [registry],
    }),
    attemptOutcomes: new Counter({
      name: 'payment_attempt_outcomes_total',
      help: 'Attempt outcomes applied, by gateway and outcome (success, failure, timeout)',
      labelNames: ['gateway', 'outcome'],
      registers: [registry],
    }),
    outcomesIgnored: new Counter({
      name: 'payment_outcomes_ignored_total',
      help: 'Outcomes that changed nothing (duplicate, unknown payment or attempt, after completion)',
      labelNames: ['why'],
      registers: [registry],
    }),
    compensations: new Counter({
      name: 'payment_compensations_total',
      help: 'Late successes after the payment settled: void/refund commands sent, by gateway',
      labelNames: ['gateway'],
      registers: [registry],
    }),
  };
}
export type OrchestratorMetrics = ReturnType<typeof createOrchestratorMetrics>;
