import type { PaymentStatus, ReviewDecision } from '../../topics/schemas';
import type { RoutablePayment, RoutingDecision } from '../routing/select';
import { classifyFailure } from './reasons';
import { isoTime } from '../../runtime/iso-time';

export type PaymentType = 'deposit' | 'withdrawal';

export type AttemptStatus =
  | 'in-flight'
  /** Timed out under the cancel-first policy: the gateway was asked to cancel and has not confirmed yet. */
  | 'cancelling'
  | 'succeeded'
  | 'failed'
  | 'timed-out'
  | 'cancelled'
  /** Succeeded after the payment had settled elsewhere: a void/refund was requested. */
  | 'compensating'
  /** The gateway confirmed the void/refund. */
  | 'compensated';

export interface Attempt {
  id: string;
  number: number;
  gatewayId: string;
  status: AttemptStatus;
  dispatchedAt: string;
  /**
   * When the current wait ends: the outcome while in flight, the cancel confirmation while cancelling, the
   * void/refund confirmation while compensating.
   */
  deadline: string;
  completedAt?: string;
  reasonCode?: string;
  /** Set when a cancel was never confirmed: nobody waits on this attempt's deadline any more. */
  cancelUnconfirmedAt?: string;
  /** While compensating: how many compensate commands were sent (all with the same command id). */
  compensationsSent?: number;
  /** Set when the last compensate command went unconfirmed too: nobody waits on this attempt's deadline any more. */
  compensationUnconfirmedAt?: string;
  /**
   * A message named this attempt but its outcome could not be read: where it
   * was parked on the dead-letter topic ("{topic}:{partition}:{offset}"),
   * why, and when it reached Kafka. The attempt was then asked to cancel,
   * never failed over blindly.
   */
  unreadableResult?: { deadLetter: string; detail: string; at: string };
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
  /** Present while a person must look at the payment: it stays PENDING and is listed for review. */
  review?: { reason: ReviewReason; attemptId: string; since: string };
  /** Operators' decisions on this payment's reviews, oldest first: who, when, why, and what was applied. */
  resolutions?: ReviewResolution[];
  attempts: Attempt[];
}

/** A person's decision on a review, applied to the payment like any outcome (ADR 0018). */
export interface ReviewResolution {
  /** Chosen by the back office; a resolution with an id already here changes nothing. */
  id: string;
  attemptId: string;
  /** Why the payment was in review. */
  reason: ReviewReason;
  decision: ReviewDecision;
  /** The subject of the operator's token. */
  actor: string;
  note: string;
  /** When the operator decided. */
  at: string;
}

/**
 * Why a person must look: a withdrawal's timed-out gateway never confirmed the cancel (it may have paid), or a
 * gateway never confirmed the void/refund of a late success (the customer may have been paid twice).
 */
export type ReviewReason = 'cancel-unconfirmed' | 'compensation-unconfirmed';

/** Compensate commands sent for one late success before it is flagged for review, unless the context says otherwise. */
export const DEFAULT_MAX_COMPENSATION_TRIES = 5;

/** Something the state machine decided must happen outside it, after the new state is stored. */
export type Effect =
  | { type: 'dispatch'; attempt: Attempt }
  | { type: 'publish-status' }
  | { type: 'cancel'; attempt: Attempt }
  | { type: 'compensate'; attempt: Attempt }
  | { type: 'flag-review'; attempt: Attempt };

/**
 * `at` is when the fact happened (for a gateway's answer: when it reached
 * Kafka); `now`, when given, is when the orchestrator decides on it, where
 * new attempts and new deadlines start (an answer read late must not shorten
 * the next gateway's time). Without `now`, both are `at`.
 */
export type Outcome = (
  // `requestedAt`: when the attempt's request reached Kafka, as the gateway saw it (health latency starts there).
  | { kind: 'success'; attemptId: string; at: string; requestedAt?: string }
  | { kind: 'failure'; attemptId: string; reasonCode: string | undefined; at: string; requestedAt?: string }
  /** The attempt's deadline passed (while in flight, or while waiting for a cancel to be confirmed). */
  | { kind: 'timeout'; attemptId: string; at: string }
  /** The gateway confirmed a cancel, or said it never saw the attempt: it will not move money. */
  | { kind: 'cancel-confirmed'; attemptId: string; at: string }
  | { kind: 'compensation-confirmed'; attemptId: string; at: string }
  /** A message named the attempt but its outcome could not be read: the money may or may not have moved. */
  | { kind: 'unreadable'; attemptId: string; at: string; deadLetter: string; detail: string }
  /**
   * A person decided a review after checking with the gateway: `paid` is that attempt's success, `not-paid` its
   * confirmed cancel, `refunded` its confirmed compensation. Applied only while the payment is in review for it.
   */
  | { kind: 'review-resolved'; attemptId: string; at: string; resolutionId: string; decision: ReviewDecision; actor: string; note: string }
) & { now?: string };

/** What the state machine needs from outside, passed in so it stays pure. */
export interface DecisionContext {
  maxAttempts: number;
  /** Routing for the next attempt, given the gateways already tried. */
  route: (payment: RoutablePayment, tried: ReadonlySet<string>) => RoutingDecision;
  newAttemptId: () => string;
  timeoutMsOf: (gatewayId: string) => number;
  timeoutPolicyOf: (gatewayId: string, type: PaymentType) => 'failover' | 'cancel-first';
  /** Compensate commands sent (the first included) before an unconfirmed compensation is flagged; default 5. */
  maxCompensationTries?: number;
}

export type Decision =
  | { changed: true; payment: Payment; effects: Effect[] }
  | { changed: false; why: 'unknown-attempt' | 'duplicate' | 'after-completion' | ResolutionRefusal };

/** Why a review resolution changed nothing although it is new: the payment is not (or no longer) in review for it. */
export type ResolutionRefusal = 'not-in-review' | 'decision-does-not-fit';

export const isTerminal = (status: PaymentStatus) => status !== 'PENDING';

/** Attempts that may still move money and whose answer is awaited. */
const isOpen = (attempt: Attempt) => attempt.status === 'in-flight' || attempt.status === 'cancelling';

/** A new payment with its first attempt; fails if routing found no gateway. */
export function createPayment(
  fields: Pick<Payment, 'id' | 'type' | 'accountId' | 'amount' | 'currency' | 'region'>,
  routing: RoutingDecision & { chosen: string },
  attemptId: string,
  timeoutMs: number,
  now: Date,
): { payment: Payment; effects: Effect[] } {
  const attempt = newAttempt(1, attemptId, routing, timeoutMs, now);
  const at = attempt.dispatchedAt;
  return {
    // Not `{ ...fields, status, … }`: in Node 20's V8 each key a literal adds after a spread is a slow runtime call
    // (docs/benchmarks/efficiency.md); keys that only replace one the spread copied are not.
    payment: Object.assign({}, fields, { status: 'PENDING' as const, createdAt: at, updatedAt: at, statusSequence: 1, attempts: [attempt] }),
    effects: [{ type: 'dispatch', attempt }, { type: 'publish-status' }],
  };
}

function newAttempt(number: number, id: string, routing: RoutingDecision & { chosen: string }, timeoutMs: number, now: Date): Attempt {
  return {
    id,
    number,
    gatewayId: routing.chosen,
    status: 'in-flight',
    dispatchedAt: isoTime(now.getTime()),
    deadline: isoTime(now.getTime() + timeoutMs),
    routing,
  };
}

/**
 * The payment lifecycle as one pure function: given the stored payment and
 * an outcome for one of its attempts, the next payment and the effects to
 * carry out. A terminal status never changes; a success that cannot settle
 * the payment any more is compensated, never dropped; a withdrawal whose
 * gateway timed out is failed over only once that gateway confirms it will
 * not pay.
 */
export function decide(payment: Payment, outcome: Outcome, context: DecisionContext): Decision {
  const attempt = payment.attempts.find((candidate) => candidate.id === outcome.attemptId);
  if (!attempt) return { changed: false, why: 'unknown-attempt' };
  const pending = !isTerminal(payment.status);

  switch (outcome.kind) {
    case 'success':
      if (attempt.status === 'succeeded' || attempt.status === 'compensating' || attempt.status === 'compensated') {
        return { changed: false, why: 'duplicate' };
      }
      // Also a late success, after a timeout or cancel: it wins if nothing else has settled the payment.
      return pending ? settleSuccess(payment, attempt, outcome.at) : compensate(payment, attempt, outcome.at, startOf(outcome), context);

    case 'failure':
      if (!isOpen(attempt)) return { changed: false, why: 'after-completion' };
      if (!pending) return closeAttempt(payment, attempt, outcome);
      if (classifyFailure(outcome.reasonCode) === 'final') return finish(payment, attempt, outcome, outcome.reasonCode ?? 'declined');
      return failOver(payment, closedAttempt(attempt, outcome), outcome.at, context, startOf(outcome));

    case 'timeout':
      if (attempt.status === 'compensating') return compensationTimedOut(payment, attempt, outcome.at, startOf(outcome), context);
      if (attempt.status === 'in-flight') {
        if (!pending) return closeAttempt(payment, attempt, outcome);
        if (context.timeoutPolicyOf(attempt.gatewayId, payment.type) === 'cancel-first') {
          return askToCancel(payment, attempt, startOf(outcome), context, 'timeout');
        }
        return failOver(payment, closedAttempt(attempt, outcome), outcome.at, context, startOf(outcome));
      }
      if (attempt.status === 'cancelling' && attempt.cancelUnconfirmedAt === undefined && pending) {
        // The first timeout delivered again (its claim lease ran out) comes before the cancel deadline.
        if (Date.parse(outcome.at) < Date.parse(attempt.deadline)) return { changed: false, why: 'duplicate' };
        return flagForReview(payment, attempt, outcome.at);
      }
      return { changed: false, why: 'after-completion' };

    case 'cancel-confirmed': {
      if (attempt.status !== 'cancelling') return { changed: false, why: attempt.status === 'cancelled' ? 'duplicate' : 'after-completion' };
      const cancelled: Attempt = { ...attempt, status: 'cancelled', completedAt: outcome.at };
      if (!pending) return { changed: true, payment: withAttempt(payment, cancelled, outcome.at), effects: [] };
      return failOver(payment, cancelled, outcome.at, context, startOf(outcome));
    }

    case 'unreadable': {
      const marked: Attempt = { ...attempt, unreadableResult: { deadLetter: outcome.deadLetter, detail: outcome.detail.slice(0, 500), at: outcome.at } };
      // An unknown outcome is never a failure: the gateway is asked to cancel, and only its confirmation fails over.
      if (attempt.status === 'in-flight' && pending) return askToCancel(payment, marked, startOf(outcome), context, 'unreadable-result');
      if (attempt.unreadableResult?.deadLetter === outcome.deadLetter) return { changed: false, why: 'duplicate' };
      return { changed: true, payment: withAttempt(payment, marked, outcome.at), effects: [] };
    }

    case 'review-resolved':
      return resolveReview(payment, attempt, outcome, context);

    case 'compensation-confirmed': {
      if (attempt.status !== 'compensating') return { changed: false, why: attempt.status === 'compensated' ? 'duplicate' : 'after-completion' };
      const confirmed = withAttempt(payment, { ...attempt, status: 'compensated' }, outcome.at);
      // A confirmation that comes after the compensation was flagged answers the question the review asked.
      const answered = payment.review?.reason === 'compensation-unconfirmed' && payment.review.attemptId === attempt.id;
      return { changed: true, payment: answered ? withoutReview(confirmed) : confirmed, effects: [] };
    }
  }
}

/** Which decisions answer which review: whether the money moved (a cancel never confirmed), or came back. */
export const decisionsFor = (reason: ReviewReason): readonly ReviewDecision[] => (reason === 'cancel-unconfirmed' ? ['paid', 'not-paid'] : ['refunded']);

/**
 * A person's answer to the question a review asks, applied as the gateway's own answer would have been: the
 * success of that attempt, its confirmed cancel (fail over, or FAILURE when no gateway is left), or its confirmed
 * compensation. Recorded on the payment with who decided and why; the same resolution again changes nothing.
 */
function resolveReview(payment: Payment, attempt: Attempt, outcome: Extract<Outcome, { kind: 'review-resolved' }>, context: DecisionContext): Decision {
  if (payment.resolutions?.some((resolution) => resolution.id === outcome.resolutionId)) return { changed: false, why: 'duplicate' };
  const review = payment.review;
  if (!review || review.attemptId !== attempt.id) return { changed: false, why: 'not-in-review' };
  if (!decisionsFor(review.reason).includes(outcome.decision)) return { changed: false, why: 'decision-does-not-fit' };
  const { resolutionId: id, decision, actor, note, at } = outcome;
  const resolution: ReviewResolution = { id, attemptId: attempt.id, reason: review.reason, decision, actor, note, at };
  const recorded: Payment = { ...payment, resolutions: [...(payment.resolutions ?? []), resolution] };
  const timing = { attemptId: attempt.id, at, ...(outcome.now === undefined ? {} : { now: outcome.now }) };
  const as: Outcome =
    decision === 'paid' ? { kind: 'success', ...timing } : decision === 'not-paid' ? { kind: 'cancel-confirmed', ...timing } : { kind: 'compensation-confirmed', ...timing };
  return decide(recorded, as, context);
}

function settleSuccess(payment: Payment, attempt: Attempt, at: string): Decision {
  const cancelled: Attempt[] = [];
  const attempts = payment.attempts.map((candidate): Attempt => {
    if (candidate.id === attempt.id) {
      const { reasonCode: _timedOut, ...rest } = candidate;
      return Object.assign({}, rest, { status: 'succeeded' as const, completedAt: at });
    }
    if (!isOpen(candidate)) return candidate;
    const closed: Attempt = { ...candidate, status: 'cancelled', completedAt: at };
    cancelled.push(closed);
    return closed;
  });
  const settled = withStatus({ ...withoutReview(payment), attempts, updatedAt: at }, 'SUCCESS', undefined);
  // The cancel carries the attempt exactly as stored, like the compensate and dispatch effects do.
  const cancels: Effect[] = cancelled.map((closed) => ({ type: 'cancel', attempt: closed }));
  return { changed: true, payment: settled, effects: [{ type: 'publish-status' }, ...cancels] };
}

function compensate(payment: Payment, attempt: Attempt, at: string, startAt: string, context: DecisionContext): Decision {
  const marked: Attempt = {
    ...attempt,
    status: 'compensating',
    completedAt: at,
    compensationsSent: 1,
    deadline: compensationDeadline(startAt, context.timeoutMsOf(attempt.gatewayId), 1),
  };
  return { changed: true, payment: withAttempt(payment, marked, at), effects: [{ type: 'compensate', attempt: marked }] };
}

/**
 * How long to wait for the confirmation of the n-th compensate command: the gateway's timeout, doubled with
 * each command sent up to 8 times it, so a gateway that is down for a while is not sent a command per timeout.
 */
function compensationDeadline(startAt: string, timeoutMs: number, sent: number): string {
  return isoTime(Date.parse(startAt) + timeoutMs * 2 ** Math.min(sent - 1, 3));
}

/** No confirmation of a void/refund in time: the same command again, or after the last one, a person decides. */
function compensationTimedOut(payment: Payment, attempt: Attempt, at: string, startAt: string, context: DecisionContext): Decision {
  if (attempt.compensationUnconfirmedAt !== undefined) return { changed: false, why: 'after-completion' };
  // A timeout delivered again (its claim lease ran out) comes before the deadline of the command sent since.
  if (Date.parse(at) < Date.parse(attempt.deadline)) return { changed: false, why: 'duplicate' };
  const sent = attempt.compensationsSent ?? 1;
  if (sent >= (context.maxCompensationTries ?? DEFAULT_MAX_COMPENSATION_TRIES)) {
    const unconfirmed: Attempt = { ...attempt, compensationUnconfirmedAt: at };
    // The payment keeps its terminal status (the money that counts moved elsewhere); the review is about this attempt.
    const review = payment.review ?? { reason: 'compensation-unconfirmed' as const, attemptId: attempt.id, since: at };
    return { changed: true, payment: { ...withAttempt(payment, unconfirmed, at), review }, effects: [{ type: 'flag-review', attempt: unconfirmed }] };
  }
  const resent: Attempt = { ...attempt, compensationsSent: sent + 1, deadline: compensationDeadline(startAt, context.timeoutMsOf(attempt.gatewayId), sent + 1) };
  return { changed: true, payment: withAttempt(payment, resent, at), effects: [{ type: 'compensate', attempt: resent }] };
}

function finish(payment: Payment, attempt: Attempt, outcome: Ending, reason: string): Decision {
  const closed = closedAttempt(attempt, outcome);
  return {
    changed: true,
    payment: withStatus(withAttempt(withoutReview(payment), closed, outcome.at), 'FAILURE', reason),
    effects: [{ type: 'publish-status' }],
  };
}

/** When the orchestrator decides on an outcome: new attempts and deadlines start here. */
const startOf = (outcome: Outcome) => outcome.now ?? outcome.at;

function askToCancel(payment: Payment, attempt: Attempt, at: string, context: DecisionContext, reasonCode: 'timeout' | 'unreadable-result'): Decision {
  const cancelling: Attempt = {
    ...attempt,
    status: 'cancelling',
    reasonCode,
    deadline: isoTime(Date.parse(at) + context.timeoutMsOf(attempt.gatewayId)),
  };
  return { changed: true, payment: withAttempt(payment, cancelling, at), effects: [{ type: 'cancel', attempt: cancelling }] };
}

function flagForReview(payment: Payment, attempt: Attempt, at: string): Decision {
  const unconfirmed: Attempt = { ...attempt, cancelUnconfirmedAt: at };
  return {
    changed: true,
    payment: { ...withAttempt(payment, unconfirmed, at), review: { reason: 'cancel-unconfirmed', attemptId: attempt.id, since: at } },
    effects: [{ type: 'flag-review', attempt: unconfirmed }],
  };
}

/** Tries the next gateway after `closed` (already marked failed, timed out or cancelled), or fails the payment. */
function failOver(payment: Payment, closed: Attempt, at: string, context: DecisionContext, startAt: string): Decision {
  const base = withAttempt(withoutReview(payment), closed, at);
  const attempts = base.attempts;
  if (attempts.length >= context.maxAttempts) {
    return { changed: true, payment: withStatus(base, 'FAILURE', 'max-attempts-exhausted'), effects: [{ type: 'publish-status' }] };
  }
  const routing = context.route(payment, new Set(attempts.map((tried) => tried.gatewayId)));
  if (routing.chosen === null) {
    return { changed: true, payment: withStatus(base, 'FAILURE', 'no-gateway-left'), effects: [{ type: 'publish-status' }] };
  }
  const next = newAttempt(attempts.length + 1, context.newAttemptId(), { ...routing, chosen: routing.chosen }, context.timeoutMsOf(routing.chosen), new Date(startAt));
  return { changed: true, payment: { ...base, attempts: [...attempts, next] }, effects: [{ type: 'dispatch', attempt: next }] };
}

function closeAttempt(payment: Payment, attempt: Attempt, outcome: Ending): Decision {
  return { changed: true, payment: withAttempt(payment, closedAttempt(attempt, outcome), outcome.at), effects: [] };
}

type Ending = Extract<Outcome, { kind: 'failure' | 'timeout' }>;

function closedAttempt(attempt: Attempt, outcome: Ending): Attempt {
  const status: AttemptStatus = outcome.kind === 'timeout' ? 'timed-out' : 'failed';
  const reasonCode = outcome.kind === 'failure' ? outcome.reasonCode : 'timeout';
  return Object.assign({}, attempt, { status, completedAt: outcome.at }, reasonCode === undefined ? {} : { reasonCode });
}

function withAttempt(payment: Payment, replacement: Attempt, at: string): Payment {
  return { ...payment, updatedAt: at, attempts: payment.attempts.map((attempt) => (attempt.id === replacement.id ? replacement : attempt)) };
}

function withoutReview(payment: Payment): Payment {
  const { review: _review, ...rest } = payment;
  return rest;
}

function withStatus(payment: Payment, status: PaymentStatus, reason: string | undefined): Payment {
  const { reason: _previous, ...rest } = payment;
  return { ...rest, status, statusSequence: payment.statusSequence + 1, ...(reason === undefined ? {} : { reason }) };
}

/** Deadlines of attempts still waiting for an outcome or a void/refund confirmation: what the timeout scheduler watches. */
export function openDeadlines(payment: Payment): Array<{ attemptId: string; deadline: string }> {
  return payment.attempts
    .filter(
      (attempt) =>
        (isOpen(attempt) && attempt.cancelUnconfirmedAt === undefined) ||
        (attempt.status === 'compensating' && attempt.compensationUnconfirmedAt === undefined),
    )
    .map((attempt) => ({ attemptId: attempt.id, deadline: attempt.deadline }));
}
