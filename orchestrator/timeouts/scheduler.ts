import type { Logger } from '../../runtime/logger';
import { startPoller } from '../../runtime/poller';
import type { PaymentStore } from '../state/store';
import type { OutcomeApplier } from '../results/apply-outcome';

export interface TimeoutSchedulerDeps {
  store: PaymentStore;
  applyOutcome: OutcomeApplier;
  clock: () => Date;
  logger: Logger;
  pollMs: number;
  /** How long a claimed deadline is reserved before another instance may take it over. */
  leaseMs?: number;
  batchSize?: number;
}

/**
 * Acts on expired attempt deadlines stored in Redis. Every instance polls;
 * a claim in Redis makes exactly one of them act on each deadline, so an
 * attempt still times out when the instance that dispatched it has died.
 */
export function startTimeoutScheduler({ store, applyOutcome, clock, logger, pollMs, leaseMs = 10_000, batchSize = 200 }: TimeoutSchedulerDeps) {
  return startPoller(
    'timeout sweep',
    pollMs,
    async () => {
      const nowMs = clock().getTime();
      for (const { paymentId, attemptId } of await store.expired(nowMs, batchSize)) {
        if (!(await store.claimDeadline(paymentId, attemptId, nowMs, leaseMs))) continue;
        logger.warn({ paymentId, attemptId }, 'attempt deadline passed');
        await applyOutcome(paymentId, { kind: 'timeout', attemptId, at: new Date(nowMs).toISOString() });
      }
    },
    logger,
  );
}
