import type { Logger } from '../../runtime/logger';
import { startPoller } from '../../runtime/poller';
import type { PaymentStore } from '../state/store';
import type { OutcomeApplier } from '../results/apply-outcome';
import type { ResultsReadProgress } from './read-progress';

export interface TimeoutSchedulerDeps {
  store: PaymentStore;
  applyOutcome: OutcomeApplier;
  progress: Pick<ResultsReadProgress, 'refresh'>;
  /** How many partitions the results topic has: each has its own deadlines (store.ts deadlinesKey). */
  partitionCount: number;
  clock: () => Date;
  logger: Logger;
  pollMs: number;
  /** Told after every sweep: per results partition, deadlines passed on our clock but not yet read past (held). */
  onSweep?: (sweep: { readThrough: number[]; nowMs: number }) => void;
  /** Told of each timeout acted on: how long after its deadline, in ms. */
  onTimeout?: (lateMs: number) => void;
  /** Told once per attempt whose deadline passed while its request had not reached Kafka yet (held for the send). */
  onHeldForSend?: () => void;
  /** How long a claimed deadline is reserved before another instance may take it over, in ms. */
  leaseMs?: number;
  batchSize?: number;
  /** Most deadlines of one results partition acted on at once. */
  concurrency?: number;
}

/** Attempts held for their send remembered at most, to report each once; forgotten all at once beyond it. */
const HELD_FOR_SEND_REMEMBERED = 10_000;

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
export function startTimeoutScheduler(deps: TimeoutSchedulerDeps) {
  const { store, applyOutcome, progress, partitionCount, clock, logger, pollMs, onSweep, onTimeout, onHeldForSend, leaseMs = 10_000, batchSize = 200, concurrency = 64 } = deps;
  /** Attempts already reported as held for their send, so each is told once. */
  const heldForSend = new Set<string>();
  return startPoller(
    'timeout sweep',
    pollMs,
    async () => {
      const nowMs = clock().getTime();
      // Deadlines passed on our clock first (one query per partition, pipelined): most sweeps find none, and then the
      // read progress need not ask Kafka for the log ends (read-progress.ts lookEveryMs).
      const due = await Promise.all(Array.from({ length: partitionCount }, (_, partition) => store.expired(partition, nowMs, batchSize)));
      const readThrough = await progress.refresh(due.some((deadlines) => deadlines.length > 0));
      onSweep?.({ readThrough, nowMs });
      await Promise.all(
        readThrough.map(async (through, partition) => {
          const upToMs = Math.min(nowMs, through);
          // Oldest first, so those read past are a prefix: the same as asking for deadlines up to upToMs.
          const expired = (due[partition] ?? []).filter(({ deadlineMs }) => deadlineMs <= upToMs);
          // Each deadline belongs to a different attempt, and the store's compare-and-set orders changes to one
          // payment, so a sweep acts on them at once: one by one, a burst of timeouts (a gateway hanging at
          // 150 attempts/s) queued up to 2 s behind each other (docs/benchmarks/failover.md).
          for (let start = 0; start < expired.length; start += concurrency) {
            await Promise.all(
              expired.slice(start, start + concurrency).map(async ({ paymentId, attemptId, deadlineMs }) => {
                const claim = await store.claimDeadline(paymentId, attemptId, upToMs, nowMs + leaseMs);
                if (claim === 'unsent') {
                  // Told once per attempt: the sweep finds it again every pollMs until the relay sends it.
                  if (!heldForSend.has(attemptId)) {
                    if (heldForSend.size >= HELD_FOR_SEND_REMEMBERED) heldForSend.clear();
                    heldForSend.add(attemptId);
                    logger.warn({ paymentId, attemptId, partition, deadline: new Date(deadlineMs).toISOString() }, 'attempt deadline passed but its request has not reached Kafka yet: waiting for the send');
                    onHeldForSend?.();
                  }
                  return;
                }
                if (claim === 'taken') return;
                heldForSend.delete(attemptId);
                const lateMs = nowMs - deadlineMs;
                logger.warn({ paymentId, attemptId, partition, deadline: new Date(deadlineMs).toISOString(), lateMs, readThrough: new Date(through).toISOString() }, 'attempt deadline passed with no answer read');
                onTimeout?.(lateMs);
                await applyOutcome(paymentId, { kind: 'timeout', attemptId, at: new Date(nowMs).toISOString() });
              }),
            );
          }
        }),
      );
    },
    logger,
  );
}
