import { z } from 'zod';
import type { AttemptCommand, AttemptRequested, CommandResult } from '../topics/schemas';

/**
 * The sandbox PSP's behaviour, changeable at run time (PUT /sandbox replaces
 * it whole; a field left out takes its default). Every mode waits `latencyMs`
 * before it answers, except where it says otherwise. `rate` is the share of
 * attempts a mode affects (one random draw per attempt, affected when the draw
 * is below `rate`); the rest are approved as in `healthy`.
 * - healthy: approves after `latencyMs` (`rate` is not used)
 * - slow: the same as healthy; meant to be used with a large `latencyMs`
 * - decline: a final business decline (`insufficient_funds`) for a share `rate`
 * - error: a retryable technical error (`gateway_error`) for a share `rate`
 * - hang: never answers a share `rate`, and ignores commands about them (a silent gateway)
 * - flap: in the first half of every `periodMs` (counted from the Unix epoch,
 *   on the arrival time of the attempt) a share `rate` gets `gateway_error`;
 *   in the second half everything is approved
 * - duplicate: approves, and answers a share `rate` twice (two result events
 *   with distinct event ids, as a PSP that re-sends a webhook)
 * - late: approves a share `rate` only after `lateMs` instead of `latencyMs`
 *   (past the orchestrator's timeout, to exercise late successes)
 * The mode and the draw are fixed when the attempt arrives: changing the
 * settings does not change attempts already waiting.
 */
export const sandboxModes = ['healthy', 'slow', 'decline', 'error', 'hang', 'flap', 'duplicate', 'late'] as const;
export type SandboxMode = (typeof sandboxModes)[number];

/** Strict JSON numbers: the HTTP body is JSON, so "0.5", true or null are refused, not coerced. */
export const sandboxSettings = z.strictObject({
  mode: z.enum(sandboxModes).default('healthy'),
  latencyMs: z.number().int().min(0).max(600_000).default(0),
  rate: z.number().min(0).max(1).default(1),
  periodMs: z.number().int().min(2).max(3_600_000).default(2_000),
  lateMs: z.number().int().min(0).max(600_000).default(10_000),
});
export type SandboxSettings = z.infer<typeof sandboxSettings>;

export const DECLINE_REASON = 'insufficient_funds';
export const ERROR_REASON = 'gateway_error';

export type PlannedAnswer = { outcome: 'success' } | { outcome: 'failure'; reasonCode: typeof DECLINE_REASON | typeof ERROR_REASON };

/** What the sandbox will do with one attempt, decided when it arrives. */
export type AttemptPlan =
  | { kind: 'silent' }
  | { kind: 'answer'; delayMs: number; answer: PlannedAnswer; deliveries: 1 | 2 };

/** True in the first (erroring) half of a flap period. */
export function isFlapErrorPhase(nowMs: number, periodMs: number): boolean {
  const phase = ((nowMs % periodMs) + periodMs) % periodMs;
  return phase < periodMs / 2;
}

/** Pure: the plan for an attempt arriving at `nowMs`, with `draw` a random number in [0, 1). */
export function planAttempt(settings: SandboxSettings, nowMs: number, draw: number): AttemptPlan {
  const { mode, latencyMs, rate, periodMs, lateMs } = settings;
  const affected = draw < rate;
  const approve = (delayMs = latencyMs, deliveries: 1 | 2 = 1): AttemptPlan => ({ kind: 'answer', delayMs, answer: { outcome: 'success' }, deliveries });
  const fail = (reasonCode: typeof DECLINE_REASON | typeof ERROR_REASON): AttemptPlan => ({
    kind: 'answer',
    delayMs: latencyMs,
    answer: { outcome: 'failure', reasonCode },
    deliveries: 1,
  });
  switch (mode) {
    case 'healthy':
    case 'slow':
      return approve();
    case 'decline':
      return affected ? fail(DECLINE_REASON) : approve();
    case 'error':
      return affected ? fail(ERROR_REASON) : approve();
    case 'hang':
      return affected ? { kind: 'silent' } : approve();
    case 'flap':
      return affected && isFlapErrorPhase(nowMs, periodMs) ? fail(ERROR_REASON) : approve();
    case 'duplicate':
      return approve(latencyMs, affected ? 2 : 1);
    case 'late':
      return affected ? approve(lateMs) : approve();
  }
}

export type AttemptState = 'pending' | 'succeeded' | 'failed' | 'cancelled' | 'compensated';

interface AttemptEntry {
  state: AttemptState;
  /** A hung attempt: never answered, and commands about it are ignored. */
  silent: boolean;
  /** False for a tombstone left by a command about an attempt never seen. */
  seen: boolean;
  /** The answer given, kept for a settled attempt so a repeated request gets it again. */
  answer?: PlannedAnswer;
}

/** The answer to a command, or `ignored` when the attempt is a silent (hung) one. */
export type CommandOutcome = CommandResult['result'] | 'ignored';

/** What the book decided about a command: the answer, and whether a waiting attempt must be stopped. */
export interface CommandDecision {
  outcome: CommandOutcome;
  stop: boolean;
}

export const DEFAULT_ATTEMPT_MEMORY = 100_000;

/**
 * The attempts the sandbox has seen and what became of them, so it can
 * answer cancel and compensate commands truthfully. Bounded: beyond
 * `capacity` the attempt least recently changed is forgotten (a Map keeps
 * insertion order; every change re-inserts). Pure: no clock, no I/O.
 *
 * Command answers (`ignored` means no answer is published at all):
 *
 * | state of the attempt      | cancel               | compensate                      |
 * |---------------------------|----------------------|---------------------------------|
 * | never seen (or forgotten) | not-found            | not-found                       |
 * | pending                   | cancelled (stopped)  | cancelled (stopped)             |
 * | pending, silent (hang)    | ignored              | ignored                         |
 * | succeeded                 | already-succeeded    | compensated (marked compensated)|
 * | failed                    | cancelled            | cancelled                       |
 * | cancelled                 | cancelled            | cancelled                       |
 * | compensated               | compensated          | compensated                     |
 *
 * Choices:
 * - failed → `cancelled`: no money moved, which is what `cancelled` promises;
 *   for compensate there is nothing to undo, so it does not claim a refund.
 * - compensate of a pending attempt stops it and answers `cancelled`: the
 *   money never moves, so there is nothing to refund.
 * - cancel of a compensated attempt answers `compensated`, not
 *   `already-succeeded`: the money moved and came back, and it must not be
 *   treated as a success.
 * - repeated commands answer the same (the consumer may redeliver them).
 * - a command about an attempt never seen leaves a tombstone, so `not-found`
 *   is a promise, not a snapshot: a request for that attempt arriving later
 *   is not processed, and the same command repeated answers `not-found` again.
 */
export class AttemptBook {
  private readonly entries = new Map<string, AttemptEntry>();

  constructor(readonly capacity = DEFAULT_ATTEMPT_MEMORY) {}

  get size(): number {
    return this.entries.size;
  }

  state(attemptId: string): AttemptState | undefined {
    return this.entries.get(attemptId)?.state;
  }

  /** True when the attempt (or a tombstone for it) is remembered. */
  has(attemptId: string): boolean {
    return this.entries.has(attemptId);
  }

  /** The answer to repeat to a request for an attempt already settled, if any. */
  settledAnswer(attemptId: string): PlannedAnswer | undefined {
    const entry = this.entries.get(attemptId);
    return entry?.state === 'succeeded' || entry?.state === 'failed' ? entry.answer : undefined;
  }

  /** Records a newly arrived attempt as pending. */
  receive(attemptId: string, silent = false): void {
    this.put(attemptId, { state: 'pending', silent, seen: true });
  }

  /**
   * The attempt's wait is over: records its answer and returns true if it is
   * to be answered, false if it was cancelled (or abandoned) meanwhile.
   * An attempt forgotten while waiting is recorded anew and answered.
   */
  settle(attemptId: string, answer: PlannedAnswer): boolean {
    const entry = this.entries.get(attemptId);
    if (entry && entry.state !== 'pending') return false;
    this.put(attemptId, { state: answer.outcome === 'success' ? 'succeeded' : 'failed', silent: false, seen: true, answer });
    return true;
  }

  /** Gives up a pending attempt without answering it (shutdown): no money moved. */
  abandon(attemptId: string): void {
    const entry = this.entries.get(attemptId);
    if (entry?.state === 'pending') this.put(attemptId, { ...entry, state: 'cancelled' });
  }

  command(command: AttemptCommand['command'], attemptId: string): CommandDecision {
    const entry = this.entries.get(attemptId);
    if (!entry) {
      this.put(attemptId, { state: 'cancelled', silent: false, seen: false });
      return { outcome: 'not-found', stop: false };
    }
    if (!entry.seen) return { outcome: 'not-found', stop: false };
    switch (entry.state) {
      case 'pending':
        if (entry.silent) return { outcome: 'ignored', stop: false };
        this.put(attemptId, { ...entry, state: 'cancelled' });
        return { outcome: 'cancelled', stop: true };
      case 'succeeded':
        if (command === 'cancel') return { outcome: 'already-succeeded', stop: false };
        this.put(attemptId, { ...entry, state: 'compensated' });
        return { outcome: 'compensated', stop: false };
      case 'failed':
      case 'cancelled':
        return { outcome: 'cancelled', stop: false };
      case 'compensated':
        return { outcome: 'compensated', stop: false };
    }
  }

  private put(attemptId: string, entry: AttemptEntry): void {
    this.entries.delete(attemptId);
    this.entries.set(attemptId, entry);
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
  }
}

export type AdapterAnswer =
  | { outcome: 'success'; gatewayReference: string; deliveries: 1 | 2 }
  | { outcome: 'failure'; reasonCode: string; deliveries: 1 | 2 }
  /**
   * Nothing is published: `hang` (a silent attempt), `cancelled` (stopped by
   * a command, or a command about it came first), `abandoned` (given up on
   * shutdown), `repeat` (a request for an attempt already pending or compensated).
   */
  | { outcome: 'no-answer'; why: 'hang' | 'cancelled' | 'abandoned' | 'repeat' };

/** What the gateway worker needs from a payment service provider. */
export interface GatewayAdapter {
  process(request: AttemptRequested): Promise<AdapterAnswer>;
  command(command: AttemptCommand): CommandOutcome;
  /** Stops every attempt still waiting, without answering; returns how many. */
  abandonPending(): number;
}

export interface SandboxAdapter extends GatewayAdapter {
  settings(): SandboxSettings;
  configure(settings: SandboxSettings): void;
}

/** Waits `ms`; resolves true when the time is up, false as soon as `signal` aborts. */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<boolean>;

export const abortableSleep: Sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (signal.aborted) {
      resolve(false);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });

export interface SandboxDeps {
  random: () => number;
  clock: () => Date;
  sleep: Sleep;
  memory?: number;
}

/** A fake PSP whose behaviour is set by `settings`; random, clock and sleep are injected for tests. */
export function createSandboxAdapter(initial: SandboxSettings, deps: SandboxDeps): SandboxAdapter {
  let current = initial;
  const book = new AttemptBook(deps.memory);
  const waiting = new Map<string, AbortController>();
  const reference = (attemptId: string) => `sbx-${attemptId}`;
  const toAnswer = (attemptId: string, answer: PlannedAnswer, deliveries: 1 | 2): AdapterAnswer =>
    answer.outcome === 'success'
      ? { outcome: 'success', gatewayReference: reference(attemptId), deliveries }
      : { outcome: 'failure', reasonCode: answer.reasonCode, deliveries };

  return {
    settings: () => current,
    configure: (settings) => {
      current = settings;
    },
    async process(request) {
      const { attemptId } = request;
      if (book.has(attemptId)) {
        // A PSP de-duplicates on its idempotency key (the attempt id): a settled attempt gets its answer again, anything else nothing.
        const settled = book.settledAnswer(attemptId);
        if (settled) return toAnswer(attemptId, settled, 1);
        return { outcome: 'no-answer', why: book.state(attemptId) === 'cancelled' ? 'cancelled' : 'repeat' };
      }
      const plan = planAttempt(current, deps.clock().getTime(), deps.random());
      if (plan.kind === 'silent') {
        book.receive(attemptId, true);
        return { outcome: 'no-answer', why: 'hang' };
      }
      book.receive(attemptId);
      if (plan.delayMs > 0) {
        const controller = new AbortController();
        waiting.set(attemptId, controller);
        try {
          await deps.sleep(plan.delayMs, controller.signal);
        } finally {
          waiting.delete(attemptId);
        }
        if (controller.signal.aborted) {
          return { outcome: 'no-answer', why: controller.signal.reason === 'abandoned' ? 'abandoned' : 'cancelled' };
        }
      }
      if (!book.settle(attemptId, plan.answer)) return { outcome: 'no-answer', why: 'cancelled' };
      return toAnswer(attemptId, plan.answer, plan.deliveries);
    },
    command(command) {
      const decision = book.command(command.command, command.attemptId);
      if (decision.stop) waiting.get(command.attemptId)?.abort('cancelled');
      return decision.outcome;
    },
    abandonPending() {
      const count = waiting.size;
      for (const [attemptId, controller] of [...waiting]) {
        book.abandon(attemptId);
        controller.abort('abandoned');
      }
      return count;
    },
  };
}
