import type { Logger } from '../../runtime/logger';
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
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  const sweep = async () => {
    const nowMs = clock().getTime();
    for (const { paymentId, attemptId } of await store.expired(nowMs, batchSize)) {
      if (stopped) return;
      if (!(await store.claimDeadline(paymentId, attemptId, nowMs, leaseMs))) continue;
      logger.warn({ paymentId, attemptId }, 'attempt deadline passed');
      await applyOutcome(paymentId, { kind: 'timeout', attemptId, at: new Date(nowMs).toISOString() });
    }
  };

  const loop = () => {
    if (stopped) return;
    running = sweep()
      .catch((error: unknown) => logger.error({ err: error }, 'timeout sweep failed; retrying'))
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, pollMs);
      });
  };
  loop();

  return async function stop(): Promise<void> {
    stopped = true;
    if (timer) clearTimeout(timer);
    await running;
  };
}
