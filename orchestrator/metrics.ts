import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Redis } from '../runtime/redis';
import type { BreakerState, ChangeReason, GatewayHealth } from './health/gateway-health';
import type { RuleBook } from './routing/rules';
import { deadlinesKey } from './state/store';

/** Every value of the labels that go with `gateway`, so each gateway's series exist from the start at 0. */
const ATTEMPT_KINDS = ['first', 'failover'] as const;
const OUTCOMES = ['success', 'retryable', 'final', 'timeout'] as const;
const FAILOVER_CAUSES = ['failure', 'timeout', 'cancel-confirmed', 'review-resolved'] as const;
const REVIEW_DECISIONS = ['paid', 'not-paid', 'refunded'] as const;
const RESOLUTION_RESULTS = ['applied', 'duplicate', 'refused'] as const;
const LATE_RESULTS = ['settled', 'compensated'] as const;
/** The health changes an instance makes itself (health/gateway-health.ts's diagram): new state and reason. */
const LOCAL_TRANSITIONS = [
  ['open', 'consecutive-failures'],
  ['open', 'failure-rate'],
  ['open', 'trial-failed'],
  ['half-open', 'ejection-over'],
  ['closed', 'trial-succeeded'],
] as const satisfies ReadonlyArray<readonly [BreakerState, ChangeReason]>;

/**
 * A `collect` hook that sets each gateway's series to 0 until it is first
 * counted: a counter that does not exist yet makes rate() and alert
 * expressions silently empty instead of 0, and a dashboard blank.
 */
function zeroFor(gatewayIds: () => Iterable<string>, label?: string, values: readonly string[] = []) {
  return function collect(this: Counter) {
    for (const gateway of gatewayIds()) {
      if (label === undefined) this.inc({ gateway }, 0);
      else for (const value of values) this.inc({ gateway, [label]: value }, 0);
    }
  };
}

/**
 * The orchestrator's own metrics; label sets stay bounded (no payment or
 * account ids). `gatewayIds` names the gateways in the rules, whose
 * per-gateway counters start at 0.
 */
export function createOrchestratorMetrics(registry: Registry, gatewayIds: () => Iterable<string> = () => []) {
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
      collect: zeroFor(gatewayIds, 'attempt', ATTEMPT_KINDS),
    }),
    attemptOutcomes: new Counter({
      name: 'payment_attempt_outcomes_total',
      help: 'Attempt outcomes applied, by gateway and outcome (success, retryable, final, timeout)',
      labelNames: ['gateway', 'outcome'],
      registers: [registry],
      collect: zeroFor(gatewayIds, 'outcome', OUTCOMES),
    }),
    outcomesIgnored: new Counter({
      name: 'payment_outcomes_ignored_total',
      help: 'Outcomes that changed nothing (duplicate, unknown payment or attempt, after completion)',
      labelNames: ['why'],
      registers: [registry],
    }),
    failovers: new Counter({
      name: 'payment_failovers_total',
      help: 'Attempts that ended retryably (failure or timeout) and made the payment try another gateway, by the gateway left',
      labelNames: ['gateway', 'cause'],
      registers: [registry],
      collect: zeroFor(gatewayIds, 'cause', FAILOVER_CAUSES),
    }),
    lateSuccesses: new Counter({
      name: 'payment_late_successes_total',
      help: 'Successes for attempts that had already timed out or been cancelled, by gateway and what they did (settled, compensated)',
      labelNames: ['gateway', 'result'],
      registers: [registry],
      collect: zeroFor(gatewayIds, 'result', LATE_RESULTS),
    }),
    flaggedForReview: new Counter({
      name: 'payments_flagged_for_review_total',
      help: 'Withdrawals left PENDING for review because the timed-out gateway never confirmed a cancel',
      labelNames: ['gateway'],
      registers: [registry],
      collect: zeroFor(gatewayIds),
    }),
    reviewResolutions: new Counter({
      name: 'payment_review_resolutions_total',
      help: 'Review resolutions from the back office, by decision (paid, not-paid, refunded) and result (applied; duplicate: that resolution was applied before; refused: the payment was not in review for it)',
      labelNames: ['decision', 'result'],
      registers: [registry],
      collect(this: Counter) {
        for (const decision of REVIEW_DECISIONS) for (const result of RESOLUTION_RESULTS) this.inc({ decision, result }, 0);
      },
    }),
    rateLimited: new Counter({
      name: 'gateway_rate_limited_total',
      help: 'Selections that skipped a gateway because its shared burst budget was spent',
      labelNames: ['gateway'],
      registers: [registry],
      collect: zeroFor(gatewayIds),
    }),
    resultLatency: new Histogram({
      name: 'gateway_result_latency_seconds',
      help: 'The gateway\'s time for an answer, in seconds, by gateway: from when its request reached Kafka (or our dispatch decision, when the answer does not say) to when the answer reached Kafka',
      labelNames: ['gateway'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    deadlineLateness: new Histogram({
      name: 'payment_deadline_lateness_seconds',
      help: 'How long after an attempt deadline its timeout was acted on, in seconds: waiting for the results partition to be read past it, the sweep interval and our own queueing (issue 11 bounds it to 1 s at steady load)',
      buckets: [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    deadlinesHeldForSend: new Counter({
      name: 'payment_deadlines_held_for_send_total',
      help: "Attempt deadlines that passed while the attempt's request had not reached Kafka yet (left in the outbox by a killed instance or a broker outage): held until the relay sends it, never read as the gateway's silence",
      registers: [registry],
    }),
    resultsUnreadable: new Counter({
      name: 'gateway_results_unreadable_total',
      help: 'Results-topic messages that named a known attempt but whose outcome could not be read (parked as unreadable-result; the gateway is asked to cancel), by gateway',
      labelNames: ['gateway'],
      registers: [registry],
      collect: zeroFor(gatewayIds),
    }),
    compensations: new Counter({
      name: 'payment_compensations_total',
      help: 'Late successes after the payment settled: void/refund commands sent, by gateway',
      labelNames: ['gateway'],
      registers: [registry],
      collect: zeroFor(gatewayIds),
    }),
    compensationResends: new Counter({
      name: 'payment_compensation_resends_total',
      help: 'Compensate commands sent again (same command id) because the void/refund was not confirmed by its deadline, by gateway',
      labelNames: ['gateway'],
      registers: [registry],
      collect: zeroFor(gatewayIds),
    }),
    compensationsUnconfirmed: new Counter({
      name: 'payment_compensations_unconfirmed_total',
      help: 'Late successes whose void/refund was never confirmed after the last compensate command: flagged for review (compensation-unconfirmed), by gateway',
      labelNames: ['gateway'],
      registers: [registry],
      collect: zeroFor(gatewayIds),
    }),
    healthTransitions: new Counter({
      name: 'gateway_health_transitions_total',
      help: "Gateway health state changes made by this instance, by new state and reason (health/gateway-health.ts's ChangeReason)",
      labelNames: ['gateway', 'state', 'reason'],
      registers: [registry],
      // Every change this instance can make (changes applied from others are not counted), so increase() of a first ejection is 1, not nothing.
      collect(this: Counter) {
        for (const gateway of gatewayIds()) for (const [state, reason] of LOCAL_TRANSITIONS) this.inc({ gateway, state, reason }, 0);
      },
    }),
    ejectionsSuppressed: new Counter({
      name: 'gateway_ejections_suppressed_total',
      help: "Ejections by consecutive failures refused because the gateway's region was at its ejection cap",
      labelNames: ['gateway'],
      registers: [registry],
      collect: zeroFor(gatewayIds),
    }),
  };
}
export type OrchestratorMetrics = ReturnType<typeof createOrchestratorMetrics>;

const BREAKER_STATE_VALUE = { closed: 0, 'half-open': 1, open: 2 } as const;

/** Per-gateway gauges read at scrape time from the live state, so they never drift from it. */
export function registerGatewayGauges(registry: Registry, deps: { ruleBook: RuleBook; health: GatewayHealth }): void {
  const { ruleBook, health } = deps;
  const breakers = health;
  const healthWeights = health;
  new Gauge({
    name: 'gateway_breaker_state',
    help: 'Circuit breaker state per gateway: 0 closed, 1 half-open, 2 open',
    labelNames: ['gateway'],
    registers: [registry],
    collect() {
      this.reset();
      for (const rule of ruleBook.rules()) this.set({ gateway: rule.gatewayId }, BREAKER_STATE_VALUE[breakers.stateOf(rule.gatewayId)]);
    },
  });
  new Gauge({
    name: 'gateway_available',
    help: 'Whether the back office rules have the gateway enabled and available (1) or not (0)',
    labelNames: ['gateway'],
    registers: [registry],
    collect() {
      this.reset();
      for (const rule of ruleBook.rules()) this.set({ gateway: rule.gatewayId }, rule.enabled && rule.available ? 1 : 0);
    },
  });
  new Gauge({
    name: 'gateway_effective_weight',
    help: 'Weight selection uses: the rule weight scaled down by recent success rate and latency',
    labelNames: ['gateway'],
    registers: [registry],
    collect() {
      this.reset();
      for (const rule of ruleBook.rules()) this.set({ gateway: rule.gatewayId }, healthWeights.effectiveWeight(rule.gatewayId, rule.weight, rule.timeoutMs));
    },
  });
  new Gauge({
    name: 'gateway_consecutive_failures',
    help: 'Technical failures in a row of each closed gateway, as this instance saw them (ejected at the configured count)',
    labelNames: ['gateway'],
    registers: [registry],
    collect() {
      this.reset();
      for (const rule of ruleBook.rules()) this.set({ gateway: rule.gatewayId }, health.explain(rule.gatewayId, rule.timeoutMs).consecutiveFailures);
    },
  });
  new Gauge({
    name: 'gateway_window_success_ratio',
    help: 'Technical success share of the last outcomes (count window) health weights are computed from',
    labelNames: ['gateway'],
    registers: [registry],
    collect() {
      this.reset();
      for (const rule of ruleBook.rules()) this.set({ gateway: rule.gatewayId }, health.explain(rule.gatewayId, rule.timeoutMs).window.successRate);
    },
  });
  new Gauge({
    name: 'gateway_window_latency_seconds',
    help: "Mean gateway latency (dispatch to the answer's broker time) of the last answers health weights are computed from",
    labelNames: ['gateway'],
    registers: [registry],
    collect() {
      this.reset();
      for (const rule of ruleBook.rules()) {
        const latencyMs = health.explain(rule.gatewayId, rule.timeoutMs).window.meanLatencyMs;
        if (latencyMs !== null) this.set({ gateway: rule.gatewayId }, latencyMs / 1000);
      }
    },
  });
}

/** A scrape waits at most this long for Redis; without an answer the state gauges are left out of that scrape. */
const STATE_READ_TIMEOUT_MS = 1_000;

/**
 * Gauges of the shared payment state, read from Redis at scrape time (one
 * round trip), so every instance reports the same numbers: take the max
 * across instances, not the sum. The keys are those of state/store.ts's
 * layout.
 */
export function registerStateGauges(
  registry: Registry,
  redis: Redis,
  deadlines: {
    partitionCount: number;
    /** Per results partition, the read-through time (epoch ms) of the last timeout sweep. */
    readThrough: () => readonly number[];
  },
): void {
  const partitions = Array.from({ length: deadlines.partitionCount }, (_, partition) => partition);
  let reading: Promise<[number, number, number, number] | undefined> | undefined;
  const read = () =>
    (reading ??= Promise.race([
      (() => {
        const now = Date.now();
        const through = deadlines.readThrough();
        const pipeline = redis.pipeline().scard('review').zcard('outbox-pending');
        for (const partition of partitions) pipeline.zcard(deadlinesKey(partition));
        // Passed on our clock but not yet read past on their partition: what the timeout sweep holds back.
        for (const partition of partitions) pipeline.zcount(deadlinesKey(partition), `(${through[partition] ?? 0}`, String(now));
        return pipeline.exec().then((replies) => {
          const counts = (replies ?? []).map(([, count]) => Number(count));
          const sum = (from: number) => counts.slice(from, from + partitions.length).reduce((total, count) => total + count, 0);
          return [sum(2), counts[0] ?? 0, counts[1] ?? 0, sum(2 + partitions.length)] as [number, number, number, number];
        });
      })(),
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), STATE_READ_TIMEOUT_MS).unref()),
    ])
      .catch(() => undefined)
      .finally(() => (reading = undefined)));
  const gauge = (name: string, help: string, index: 0 | 1 | 2 | 3) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        this.reset();
        const counts = await read();
        if (counts) this.set(counts[index]);
      },
    });
  gauge('payments_in_flight', 'Payments waiting for a gateway: attempts with an open deadline (shared state, the same on every instance)', 0);
  gauge('payments_pending_review', 'Withdrawals left PENDING for a person because a cancel was never confirmed (shared state)', 1);
  gauge('outbox_pending_payments', 'Payments whose decided Kafka messages are not confirmed sent yet (shared state); grows while Kafka refuses them', 2);
  gauge(
    'payment_deadlines_held',
    'Attempt deadlines passed on the clock but not acted on because their results partition has not been read past them yet (shared state): our own lag, never counted against a gateway',
    3,
  );
  new Gauge({
    name: 'results_read_lag_seconds',
    help: 'Per results partition, now minus the time up to which every result appended to it has been applied (as of the last timeout sweep); grows while nobody reads the partition',
    labelNames: ['partition'],
    registers: [registry],
    collect() {
      const now = Date.now();
      const through = deadlines.readThrough();
      for (const partition of partitions) this.set({ partition: String(partition) }, through[partition] ? Math.max(0, now - through[partition]) / 1000 : 0);
    },
  });
}
