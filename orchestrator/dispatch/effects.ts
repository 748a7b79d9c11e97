import { randomUUID } from 'node:crypto';
import type { Logger } from '../../runtime/logger';
import type { TopicMessage } from '../../runtime/kafka';
import type { TopicNames } from '../../topics/names';
import type { AttemptCommand, AttemptEvent, AttemptRequested, PaymentAttemptsChanged, PaymentStatusChanged } from '../../topics/schemas';
import { isTerminal, type Attempt, type Effect, type Payment, type ReviewResolution } from '../state/payment';
import type { PaymentStore } from '../state/store';
import type { OrchestratorMetrics } from '../metrics';
import { isoTime } from '../../runtime/iso-time';

export interface EffectDeps {
  topics: TopicNames;
  logger: Logger;
  metrics: OrchestratorMetrics;
  clock: () => Date;
}

/**
 * What the state machine decided, in two halves: the Kafka messages the
 * effects stand for (built before the state is stored, so they are stored
 * with it in the outbox), and the logs and metrics of the change (once it is
 * stored, so a lost compare-and-set race counts nothing).
 */
export function createEffects({ topics, logger, metrics, clock }: EffectDeps) {
  /**
   * Every message is built as `Object.assign(envelope(type), fields)`, never `{ ...envelope(type), ...fields }`:
   * in Node 20's V8 each property added after a spread is a runtime call (about 0.5 µs each), and the object ends
   * up slow to serialize; building a payment's messages cost 25 µs that way (docs/benchmarks/efficiency.md).
   */
  const envelope = <T extends string>(type: T) => ({
    eventId: randomUUID(),
    type,
    occurredAt: isoTime(clock().getTime()),
    schemaVersion: 1 as const,
  });

  const dispatch = (payment: Payment, attempt: Attempt): TopicMessage => {
    const request: AttemptRequested = Object.assign(envelope('attempt.requested'), {
      paymentId: payment.id,
      attemptId: attempt.id,
      gatewayId: attempt.gatewayId,
      paymentType: payment.type,
      accountId: payment.accountId,
      amount: payment.amount,
      currency: payment.currency,
      region: payment.region,
      deadline: attempt.deadline,
    });
    return { topic: topics.gatewayRequests(attempt.gatewayId), key: payment.id, value: request };
  };

  const command = (payment: Payment, attempt: Attempt, kind: AttemptCommand['command'], reason: string): TopicMessage => {
    const message: AttemptCommand = Object.assign(envelope('attempt.command'), {
      // A compensate command sent again after its deadline is the same command, not a second refund: one id
      // per attempt, so a gateway that de-duplicates on it voids/refunds once however many times it is sent.
      ...(kind === 'compensate' ? { eventId: `${attempt.id}:compensate` } : {}),
      command: kind,
      paymentId: payment.id,
      attemptId: attempt.id,
      gatewayId: attempt.gatewayId,
      reason,
    });
    return { topic: topics.gatewayRequests(attempt.gatewayId), key: payment.id, value: message };
  };

  /** The attempt a status event names: the one that settled it, else the latest. */
  const statusAttempt = (payment: Payment) => payment.attempts.find((attempt) => attempt.status === 'succeeded') ?? payment.attempts.at(-1);

  const status = (payment: Payment): TopicMessage => {
    const attempt = statusAttempt(payment);
    const event: PaymentStatusChanged = Object.assign(
      envelope('payment.status'),
      {
        paymentId: payment.id,
        status: payment.status,
        sequence: payment.statusSequence,
        paymentType: payment.type,
        accountId: payment.accountId,
        amount: payment.amount,
        currency: payment.currency,
        region: payment.region,
      },
      // Optional keys as further sources rather than spreads inside the literal, which are as slow when not empty.
      attempt ? { attemptId: attempt.id, gatewayId: attempt.gatewayId } : {},
      payment.reason === undefined ? {} : { reason: payment.reason },
    );
    return { topic: topics.paymentStatus, key: payment.id, value: event };
  };

  return {
    /**
     * The `payment.attempts` message of one stored change: what changed in the attempts from `previous` (undefined
     * for a new payment) to `next`, numbered by the revision the change writes.
     */
    attemptEvents(previous: Payment | undefined, next: Payment, revision: number): TopicMessage {
      const message: PaymentAttemptsChanged = Object.assign(envelope('payment.attempts'), { paymentId: next.id, sequence: revision, events: attemptChanges(previous, next) });
      return { topic: topics.paymentAttempts, key: next.id, value: message };
    },

    messagesFor(payment: Payment, effects: readonly Effect[]): TopicMessage[] {
      // A loop, not flatMap: in Node 20's V8 flatMap and flat add each element through a runtime call (about 0.3 µs
      // for a one-message effect; bench/array-flattening.ts).
      const messages: TopicMessage[] = [];
      for (const effect of effects) {
        switch (effect.type) {
          case 'dispatch':
            messages.push(dispatch(payment, effect.attempt));
            break;
          case 'publish-status':
            messages.push(status(payment));
            break;
          case 'cancel':
            messages.push(command(payment, effect.attempt, 'cancel', 'timed out, or another attempt settled the payment'));
            break;
          case 'compensate': {
            const sent = effect.attempt.compensationsSent ?? 1;
            const why = sent > 1 ? `late success after the payment settled; not confirmed yet, sent again (${sent})` : 'late success after the payment settled';
            messages.push(command(payment, effect.attempt, 'compensate', why));
            break;
          }
          case 'flag-review':
            break;
        }
      }
      return messages;
    },

    observe(payment: Payment, effects: readonly Effect[]): void {
      for (const effect of effects) {
        const ids = { paymentId: payment.id, attemptId: 'attempt' in effect ? effect.attempt.id : undefined, gatewayId: 'attempt' in effect ? effect.attempt.gatewayId : undefined };
        switch (effect.type) {
          case 'dispatch':
            // Counted here, once per stored decision, rather than each time selection ran.
            for (const { gatewayId, reason } of effect.attempt.routing.excluded) {
              if (reason === 'rate-limited') metrics.rateLimited.inc({ gateway: gatewayId });
            }
            metrics.attemptsDispatched.inc({ gateway: effect.attempt.gatewayId, attempt: effect.attempt.number > 1 ? 'failover' : 'first' });
            // A first attempt is named by the 'payment accepted' line (dispatch/accept.ts): one line per payment
            // accepted, not three. A failover's new attempt gets its own line, with its id and gateway.
            if (effect.attempt.number > 1) logger.info(Object.assign(ids, { attempt: effect.attempt.number }), 'attempt dispatched');
            break;
          case 'publish-status':
            // Not logged on a line of its own: the line of the change that published it ('payment accepted',
            // 'outcome applied') carries the status and reason.
            if (payment.status !== 'PENDING') {
              metrics.paymentsCompleted.inc({ type: payment.type, region: payment.region, currency: payment.currency, status: payment.status });
              metrics.paymentDuration.observe(
                { type: payment.type, gateway: statusAttempt(payment)?.gatewayId ?? 'none', status: payment.status },
                (Date.parse(payment.updatedAt) - Date.parse(payment.createdAt)) / 1000,
              );
            }
            break;
          case 'cancel':
            logger.warn(ids, 'attempt cancel sent');
            break;
          case 'compensate': {
            const sent = effect.attempt.compensationsSent ?? 1;
            // Counted once per late success; re-sends have their own counter (results/apply-outcome.ts learn).
            if (sent > 1) {
              logger.warn({ ...ids, sent, deadline: effect.attempt.deadline }, 'compensation not confirmed in time: compensate command sent again');
              break;
            }
            metrics.compensations.inc({ gateway: effect.attempt.gatewayId });
            logger.critical(ids, 'late success after the payment settled: compensation sent');
            break;
          }
          case 'flag-review':
            if (payment.review?.reason === 'compensation-unconfirmed' && payment.review.attemptId === effect.attempt.id) {
              logger.critical(
                { ...ids, sent: effect.attempt.compensationsSent },
                'payment flagged for review: the gateway never confirmed the void/refund of a late success; the customer may have been paid twice',
              );
            } else {
              logger.critical(ids, 'withdrawal flagged for review: the timed-out gateway never confirmed the cancel');
            }
            break;
        }
      }
    },
  };
}
export type Effects = ReturnType<typeof createEffects>;

/**
 * The store, with every change it writes carrying that change's `payment.attempts` message in the same outbox
 * entry set (so the same Redis script and the same produce request as the change's other messages): revision 1
 * for an accepted payment, as the store's create script writes it, and the revision each compare-and-set update
 * writes. Wrapping the store rather than its callers makes the stream complete by construction: no path can store
 * a change of a payment without its attempt events.
 */
export function withAttemptEvents(store: PaymentStore, effects: Pick<Effects, 'attemptEvents'>): PaymentStore {
  return {
    ...store,
    create: (payment, idempotencyKey, requestHash, messages) =>
      store.create(payment, idempotencyKey, requestHash, [...messages, effects.attemptEvents(undefined, payment, 1)]),
    update: (previous, next, messages) =>
      store.update(previous, next, [...messages, effects.attemptEvents(previous.payment, next, Number(previous.revision) + 1)]),
  };
}

/**
 * Every attempt-level change from `previous` to `next`, in the order it happened: each existing attempt's changes
 * (in attempt order), then the review's, then the attempts dispatched. Derived from the two documents, so an
 * outcome that sends no message (a confirmed compensation, an unreadable result after completion) is here too.
 */
export function attemptChanges(previous: Payment | undefined, next: Payment): AttemptEvent[] {
  const before = new Map(previous?.attempts.map((attempt) => [attempt.id, attempt]));
  const resolved = newResolution(previous, next);
  const changed: AttemptEvent[] = [];
  const dispatched: AttemptEvent[] = [];
  for (const attempt of next.attempts) {
    const was = before.get(attempt.id);
    if (!was || !previous) {
      dispatched.push({
        kind: 'dispatched',
        attemptId: attempt.id,
        gatewayId: attempt.gatewayId,
        number: attempt.number,
        deadline: attempt.deadline,
        routing: explanation(attempt),
      });
      continue;
    }
    const events = attemptChangesOf(was, attempt, previous, next);
    // An operator's decision is applied as the gateway's answer would be, but the gateway did not answer: the
    // review-resolved event, with who decided and why, is the record of it.
    changed.push(...(resolved?.attemptId === attempt.id ? events.filter((event) => !ANSWER_KINDS.has(event.kind)) : events));
  }
  return [...changed, ...reviewChanges(previous, next, resolved), ...dispatched];
}

/** What a review resolution stands in for: the success, confirmed cancel or confirmed compensation it is applied as. */
const ANSWER_KINDS = new Set<AttemptEvent['kind']>(['answered', 'cancel-confirmed', 'compensation-confirmed']);

/** The operator's resolution recorded by this change, if any (one per change: it is one outcome). */
function newResolution(previous: Payment | undefined, next: Payment): ReviewResolution | undefined {
  const known = new Set(previous?.resolutions?.map((resolution) => resolution.id));
  return next.resolutions?.find((resolution) => !known.has(resolution.id));
}

const on = (attempt: Attempt) => ({ attemptId: attempt.id, gatewayId: attempt.gatewayId });

/**
 * The gateway's answer to an attempt, part of every payment's outcome: built without spreads (each key added after
 * a spread is a runtime call in Node 20's V8, bench/object-building.ts), and by a module function rather than a
 * closure made per change (tsx keeps each named closure's name with a call to Object.defineProperty).
 */
function answeredEvent(now: Attempt, next: Payment, outcome: 'success' | 'failure', late: boolean): AttemptEvent {
  const event: Extract<AttemptEvent, { kind: 'answered' }> = {
    kind: 'answered',
    attemptId: now.id,
    gatewayId: now.gatewayId,
    outcome,
    at: now.completedAt ?? next.updatedAt,
  };
  if (outcome === 'failure' && now.reasonCode !== undefined) event.reasonCode = now.reasonCode;
  if (late) event.late = true;
  return event;
}

function explanation({ routing: { candidates, excluded, rulesVersion } }: Attempt) {
  return { candidates, excluded, rulesVersion };
}

const compensationAsked = (now: Attempt): AttemptEvent => ({ kind: 'compensation-asked', ...on(now), try: now.compensationsSent ?? 1, deadline: now.deadline });

/** What happened to one attempt between two stored versions of its payment. */
function attemptChangesOf(was: Attempt, now: Attempt, previous: Payment, next: Payment): AttemptEvent[] {
  const events: AttemptEvent[] = [];
  if (now.unreadableResult && now.unreadableResult.deadLetter !== was.unreadableResult?.deadLetter) {
    events.push({ kind: 'result-unreadable', ...on(now), deadLetter: now.unreadableResult.deadLetter });
  }
  const late = was.status !== 'in-flight' || isTerminal(previous.status);
  if (was.status === now.status) {
    // The only change of an attempt that keeps its status and is not above: a compensate command sent again.
    if (now.status === 'compensating' && (now.compensationsSent ?? 1) > (was.compensationsSent ?? 1)) events.push(compensationAsked(now));
    return events;
  }
  switch (now.status) {
    case 'succeeded':
      events.push(answeredEvent(now, next, 'success', late));
      break;
    case 'compensating':
      events.push(answeredEvent(now, next, 'success', late), compensationAsked(now));
      break;
    case 'failed':
      events.push(answeredEvent(now, next, 'failure', late));
      break;
    case 'timed-out':
      events.push({ kind: 'timed-out', ...on(now) });
      break;
    case 'cancelling':
      if (now.reasonCode === 'timeout') events.push({ kind: 'timed-out', ...on(now) });
      events.push({ kind: 'cancel-asked', ...on(now), why: now.reasonCode === 'timeout' ? 'timeout' : 'unreadable-result' });
      break;
    case 'cancelled':
      // Cancelled at once when another attempt settles the payment (the command goes out now); otherwise confirmed.
      events.push(
        !isTerminal(previous.status) && next.status === 'SUCCESS'
          ? { kind: 'cancel-asked', ...on(now), why: 'settled-elsewhere' }
          : { kind: 'cancel-confirmed', ...on(now) },
      );
      break;
    case 'compensated':
      events.push({ kind: 'compensation-confirmed', ...on(now) });
      break;
    case 'in-flight':
      break;
  }
  return events;
}

const gatewayOf = (payment: Payment, attemptId: string) => payment.attempts.find((attempt) => attempt.id === attemptId)?.gatewayId ?? '';

/** A review that ended (by the gateway's answer, or by an operator's resolution), then one that began. */
function reviewChanges(previous: Payment | undefined, next: Payment, resolved: ReviewResolution | undefined): AttemptEvent[] {
  const was = previous?.review;
  const now = next.review;
  const same = was !== undefined && now !== undefined && was.attemptId === now.attemptId && was.reason === now.reason;
  const events: AttemptEvent[] = [];
  if (was && !same) {
    const byOperator = resolved?.attemptId === was.attemptId ? { resolution: resolved.decision, actor: resolved.actor, note: resolved.note } : undefined;
    events.push({ kind: 'review-resolved', attemptId: was.attemptId, gatewayId: gatewayOf(next, was.attemptId), reason: was.reason, ...(byOperator ?? { resolution: 'gateway-answered' }) });
  }
  if (now && !same) events.push({ kind: 'review-flagged', attemptId: now.attemptId, gatewayId: gatewayOf(next, now.attemptId), reason: now.reason });
  return events;
}
