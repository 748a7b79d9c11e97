import type { PaymentStatus } from '../../topics/schemas';
import type { RoutablePayment, RoutingDecision } from '../routing/select';
import { classifyFailure } from './reasons';

export type PaymentType = 'deposit' | 'withdrawal';

export type AttemptStatus =
  | 'in-flight'
  | 'succeeded'
  | 'failed'
  | 'timed-out'
  | 'cancelled'
  /** Succeeded after the payment had settled elsewhere: a void/refund was sent. */
  | 'compensated';

export interface Attempt {
  id: string;
  number: number;
  gatewayId: string;
  status: AttemptStatus;
  dispatchedAt: string;
  deadline: string;
  completedAt?: string;
  reasonCode?: string;
  routing: RoutingDecision;
}

export interface Payment {
  id: string;
  type: PaymentType;
  accountId: string;
  amount: string;
  currency: string;
  region: string;
  status: PaymentStatus;
  reason?: string;
  createdAt: string;
  updatedAt: string;
  /** Number of status events published so far; the next one carries sequence + 1. */
  statusSequence: number;
  attempts: Attempt[];
}

/** Something the state machine decided must happen outside it, after the new state is stored. */
export type Effect =
  | { type: 'dispatch'; attempt: Attempt }
  | { type: 'publish-status' }
  | { type: 'cancel'; attempt: Attempt }
  | { type: 'compensate'; attempt: Attempt };

export type Outcome =
  | { kind: 'success'; attemptId: string; at: string }
  | { kind: 'failure'; attemptId: string; reasonCode: string | undefined; at: string }
  | { kind: 'timeout'; attemptId: string; at: string };

/** What the state machine needs from outside, passed in so it stays pure. */
export interface DecisionContext {
  maxAttempts: number;
  /** Routing for the next attempt, given the gateways already tried. */
  route: (payment: RoutablePayment, tried: ReadonlySet<string>) => RoutingDecision;
  newAttemptId: () => string;
  timeoutMsOf: (gatewayId: string) => number;
}

export type Decision =
  | { changed: true; payment: Payment; effects: Effect[] }
  | { changed: false; why: 'unknown-attempt' | 'duplicate' | 'after-completion' };

export const isTerminal = (status: PaymentStatus) => status !== 'PENDING';

/** A new payment with its first attempt; fails if routing found no gateway. */
export function createPayment(
  fields: Pick<Payment, 'id' | 'type' | 'accountId' | 'amount' | 'currency' | 'region'>,
  routing: RoutingDecision & { chosen: string },
  attemptId: string,
  timeoutMs: number,
  now: Date,
): { payment: Payment; effects: Effect[] } {
  const attempt = newAttempt(1, attemptId, routing, timeoutMs, now);
  const at = now.toISOString();
  return {
    payment: { ...fields, status: 'PENDING', createdAt: at, updatedAt: at, statusSequence: 1, attempts: [attempt] },
    effects: [{ type: 'dispatch', attempt }, { type: 'publish-status' }],
  };
}

function newAttempt(number: number, id: string, routing: RoutingDecision & { chosen: string }, timeoutMs: number, now: Date): Attempt {
  return {
    id,
    number,
    gatewayId: routing.chosen,
    status: 'in-flight',
    dispatchedAt: now.toISOString(),
    deadline: new Date(now.getTime() + timeoutMs).toISOString(),
    routing,
  };
}

/**
 * The payment lifecycle as one pure function: given the stored payment and
 * an outcome for one of its attempts, the next payment and the effects to
 * carry out. A terminal status never changes; a success that cannot settle
 * the payment any more is compensated, never dropped.
 */
export function decide(payment: Payment, outcome: Outcome, context: DecisionContext): Decision {
  const attempt = payment.attempts.find((candidate) => candidate.id === outcome.attemptId);
  if (!attempt) return { changed: false, why: 'unknown-attempt' };

  if (attempt.status !== 'in-flight') return decideLate(payment, attempt, outcome);

  if (isTerminal(payment.status)) {
    // The payment settled through another attempt while this one was still out.
    if (outcome.kind === 'success') return compensate(payment, attempt, outcome.at);
    return closeAttempt(payment, attempt, outcome, []);
  }

  switch (outcome.kind) {
    case 'success':
      return settleSuccess(payment, attempt, outcome.at);
    case 'failure':
      if (classifyFailure(outcome.reasonCode) === 'final') {
        return finish(payment, attempt, outcome, 'FAILURE', outcome.reasonCode ?? 'declined');
      }
      return failOver(payment, attempt, outcome, context);
    case 'timeout':
      return failOver(payment, attempt, outcome, context);
  }
}

/** An outcome for an attempt that already has one. */
function decideLate(payment: Payment, attempt: Attempt, outcome: Outcome): Decision {
  if (outcome.kind !== 'success') return { changed: false, why: 'after-completion' };
  if (attempt.status === 'succeeded' || attempt.status === 'compensated') return { changed: false, why: 'duplicate' };
  // A late success (after a timeout or a cancel): it wins if nothing else has settled the payment.
  if (!isTerminal(payment.status)) return settleSuccess(payment, attempt, outcome.at);
  return compensate(payment, attempt, outcome.at);
}

function settleSuccess(payment: Payment, attempt: Attempt, at: string): Decision {
  const others = payment.attempts.filter((other) => other.id !== attempt.id && other.status === 'in-flight');
  const attempts = payment.attempts.map((candidate) => {
    if (candidate.id === attempt.id) return { ...candidate, status: 'succeeded' as const, completedAt: at };
    if (candidate.status === 'in-flight') return { ...candidate, status: 'cancelled' as const, completedAt: at };
    return candidate;
  });
  const settled = withStatus({ ...payment, attempts, updatedAt: at }, 'SUCCESS', undefined);
  const cancels: Effect[] = others.map((other) => ({ type: 'cancel', attempt: { ...other, status: 'cancelled' } }));
  return { changed: true, payment: settled, effects: [{ type: 'publish-status' }, ...cancels] };
}

function compensate(payment: Payment, attempt: Attempt, at: string): Decision {
  const marked: Attempt = { ...attempt, status: 'compensated', completedAt: at };
  return {
    changed: true,
    payment: { ...payment, updatedAt: at, attempts: replaceAttempt(payment.attempts, marked) },
    effects: [{ type: 'compensate', attempt: marked }],
  };
}

function finish(payment: Payment, attempt: Attempt, outcome: Outcome, status: 'FAILURE', reason: string): Decision {
  const closed = closedAttempt(attempt, outcome);
  return {
    changed: true,
    payment: withStatus({ ...payment, updatedAt: outcome.at, attempts: replaceAttempt(payment.attempts, closed) }, status, reason),
    effects: [{ type: 'publish-status' }],
  };
}

function failOver(payment: Payment, attempt: Attempt, outcome: Outcome, context: DecisionContext): Decision {
  const closed = closedAttempt(attempt, outcome);
  const attempts = replaceAttempt(payment.attempts, closed);
  const base = { ...payment, updatedAt: outcome.at, attempts };
  if (attempts.length >= context.maxAttempts) {
    return { changed: true, payment: withStatus(base, 'FAILURE', 'max-attempts-exhausted'), effects: [{ type: 'publish-status' }] };
  }
  const routing = context.route(payment, new Set(attempts.map((tried) => tried.gatewayId)));
  if (routing.chosen === null) {
    return { changed: true, payment: withStatus(base, 'FAILURE', 'no-gateway-left'), effects: [{ type: 'publish-status' }] };
  }
  const next = newAttempt(
    attempts.length + 1,
    context.newAttemptId(),
    { ...routing, chosen: routing.chosen },
    context.timeoutMsOf(routing.chosen),
    new Date(outcome.at),
  );
  return { changed: true, payment: { ...base, attempts: [...attempts, next] }, effects: [{ type: 'dispatch', attempt: next }] };
}

function closeAttempt(payment: Payment, attempt: Attempt, outcome: Outcome, effects: Effect[]): Decision {
  const closed = closedAttempt(attempt, outcome);
  return { changed: true, payment: { ...payment, updatedAt: outcome.at, attempts: replaceAttempt(payment.attempts, closed) }, effects };
}

function closedAttempt(attempt: Attempt, outcome: Outcome): Attempt {
  const status: AttemptStatus = outcome.kind === 'success' ? 'succeeded' : outcome.kind === 'timeout' ? 'timed-out' : 'failed';
  const reasonCode = outcome.kind === 'failure' ? outcome.reasonCode : outcome.kind === 'timeout' ? 'timeout' : undefined;
  return { ...attempt, status, completedAt: outcome.at, ...(reasonCode === undefined ? {} : { reasonCode }) };
}

function replaceAttempt(attempts: Attempt[], replacement: Attempt): Attempt[] {
  return attempts.map((attempt) => (attempt.id === replacement.id ? replacement : attempt));
}

function withStatus(payment: Payment, status: PaymentStatus, reason: string | undefined): Payment {
  const { reason: _previous, ...rest } = payment;
  return { ...rest, status, statusSequence: payment.statusSequence + 1, ...(reason === undefined ? {} : { reason }) };
}

/** Deadlines of attempts still waiting for an outcome: what the timeout scheduler watches. */
export function openDeadlines(payment: Payment): Array<{ attemptId: string; deadline: string }> {
  return payment.attempts
    .filter((attempt) => attempt.status === 'in-flight')
    .map((attempt) => ({ attemptId: attempt.id, deadline: attempt.deadline }));
}
