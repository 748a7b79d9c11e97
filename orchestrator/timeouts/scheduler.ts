import type { Logger } from '../../runtime/logger';
import { startPoller } from '../../runtime/poller';
import type { PaymentStore } from '../state/store';
import type { OutcomeApplier } from '../results/apply-outcome';
import type { ResultsReadProgress } from './read-progress';

export interface TimeoutSchedulerDeps {
  store: PaymentStore;
  applyOutcome: OutcomeApplier;
  progress: Pick<ResultsReadProgress, 'refresh'>;
  clock: () => Date;
  logger: Logger;
  pollMs: number;
  /** Told after every sweep: per results partition, deadlines passed on our clock but not yet read past (held). */
  onSweep?: (sweep: { readThrough: number[]; nowMs: number }) => void;
  /** How long a claimed deadline is reserved before another instance may take it over, in ms. */
  leaseMs?: number;
  batchSize?: number;
}

/**
 * Acts on attempt deadlines stored in Redis, but only once the gateway was
 * really silent: a deadline D on results partition p fires when our clock
 * has passed D *and* every result the broker appended to p before D has been
 * applied (the partition's read-through time, read-progress.ts). A result
 * produced in time is therefore handled as on time however long it waited
 * in Kafka, and a partition nobody reads (a rebalance, every instance down,
 * a stuck consumer) holds its deadlines until someone reads it again
 * (docs/decisions/0015). Every instance sweeps; a claim in Redis makes
 * exactly one of them act on each deadline.
 */
export function startTimeoutScheduler({ store, applyOutcome, progress, clock, logger, pollMs, onSweep, leaseMs = 10_000, batchSize = 200 }: TimeoutSchedulerDeps) {
  return startPoller(
    'timeout sweep',
    pollMs,
    async () => {
      const readThrough = await progress.refresh();
      const nowMs = clock().getTime();
      onSweep?.({ readThrough, nowMs });
      await Promise.all(
        readThrough.map(async (through, partition) => {
          const upToMs = Math.min(nowMs, through);
          for (const { paymentId, attemptId } of await store.expired(partition, upToMs, batchSize)) {
            if (!(await store.claimDeadline(paymentId, attemptId, upToMs, nowMs + leaseMs))) continue;
            logger.warn({ paymentId, attemptId, partition, readThrough: new Date(through).toISOString() }, 'attempt deadline passed with no answer read');
            await applyOutcome(paymentId, { kind: 'timeout', attemptId, at: new Date(nowMs).toISOString() });
          }
        }),
      );
    },
    logger,
  );
}
