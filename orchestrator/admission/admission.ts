import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../../runtime/logger';

/** Which of the orchestrator's own backlogs refused a payment. */
export type OverloadSignal = 'results-backlog' | 'event-loop-delay';

/**
 * Why new payments are refused now: the signal over its bound, and the answer to give (503 `overloaded` with
 * Retry-After). A plain value, not an Error: a refusal is the usual answer under overload and must stay cheap.
 */
export interface Refusal {
  signal: OverloadSignal;
  /** Seconds, for the Retry-After header: the backlog rounded up, at least 1. */
  retryAfterSeconds: number;
  message: string;
}

const refusalOf = (signal: OverloadSignal, valueMs: number, limitMs: number): Refusal => {
  const retryAfterSeconds = Math.max(1, Math.ceil(valueMs / 1000));
  return { signal, retryAfterSeconds, message: `the orchestrator is behind (${signal} ${Math.round(valueMs)} ms, over ${limitMs} ms); retry after ${retryAfterSeconds} s` };
};

export interface AdmissionDeps {
  /**
   * How long results may have waited unread on the partitions this instance
   * reads, in ms (read-progress.ts `backlogMs`, max over its partitions): the
   * work it accepted but has not caught up with.
   */
  resultsBacklogMs: () => number;
  /** Refuse above this results backlog, in ms. */
  maxResultsBacklogMs: number;
  /** Refuse above this event-loop delay (p99 over the last sample window), in ms: the process has no CPU to spare. */
  maxEventLoopDelayMs: number;
  /** How often the event-loop delay is sampled, in ms. */
  sampleMs: number;
  registry: Registry;
  logger: Logger;
}

export interface Admission {
  /** Why the orchestrator cannot take new work now; undefined when it can. Costs no I/O. */
  refusal(): Refusal | undefined;
  /** Counts a refusal actually sent (an idempotent replay is answered instead). */
  refused(signal: OverloadSignal): void;
  stop(): void;
}

/**
 * Admission control: the orchestrator accepts only work it can finish inside
 * its deadlines. When its own backlog passes a bound — results it has not read
 * yet, or an event loop too busy to read them — `POST /v1/payments` answers
 * `503 overloaded` with Retry-After at once and writes nothing, so the
 * payments already accepted keep their pace instead of every payment slowing
 * down together (docs/decisions/0015).
 */
export function createAdmission(deps: AdmissionDeps): Admission {
  const { resultsBacklogMs, maxResultsBacklogMs, maxEventLoopDelayMs, sampleMs, registry, logger } = deps;
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  let eventLoopDelayMs = 0;
  const timer = setInterval(() => {
    eventLoopDelayMs = histogram.percentile(99) / 1e6;
    histogram.reset();
  }, sampleMs);
  timer.unref();

  const refusedCount = new Counter({
    name: 'payments_refused_overloaded_total',
    help: 'Payment requests answered 503 overloaded (nothing written), by the backlog signal that was over its bound',
    labelNames: ['signal'],
    registers: [registry],
  });
  for (const signal of ['results-backlog', 'event-loop-delay'] satisfies OverloadSignal[]) refusedCount.inc({ signal }, 0);
  new Gauge({
    name: 'orchestrator_backlog_seconds',
    help: 'The admission signals of this instance, in seconds: results-backlog (oldest result possibly unread on its partitions) and event-loop-delay (p99 over the last sample)',
    labelNames: ['signal'],
    registers: [registry],
    collect() {
      this.set({ signal: 'results-backlog' }, resultsBacklogMs() / 1000);
      this.set({ signal: 'event-loop-delay' }, eventLoopDelayMs / 1000);
    },
  });

  let overloadedSince: number | undefined;
  const over = (): { signal: OverloadSignal; valueMs: number; limitMs: number } | undefined => {
    const backlog = resultsBacklogMs();
    if (backlog > maxResultsBacklogMs) return { signal: 'results-backlog', valueMs: backlog, limitMs: maxResultsBacklogMs };
    if (eventLoopDelayMs > maxEventLoopDelayMs) return { signal: 'event-loop-delay', valueMs: eventLoopDelayMs, limitMs: maxEventLoopDelayMs };
    return undefined;
  };

  return {
    refusal() {
      const found = over();
      if (!found) {
        if (overloadedSince !== undefined) logger.warn({ overloadedMs: Date.now() - overloadedSince }, 'admission: accepting payments again');
        overloadedSince = undefined;
        return undefined;
      }
      if (overloadedSince === undefined) {
        overloadedSince = Date.now();
        logger.warn({ signal: found.signal, valueMs: Math.round(found.valueMs), limitMs: found.limitMs }, 'admission: refusing new payments, the orchestrator is behind');
      }
      return refusalOf(found.signal, found.valueMs, found.limitMs);
    },
    refused(signal) {
      refusedCount.inc({ signal });
    },
    stop() {
      clearInterval(timer);
      histogram.disable();
    },
  };
}
