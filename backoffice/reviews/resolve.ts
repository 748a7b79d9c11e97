import { Counter, type Registry } from 'prom-client';
import { z } from 'zod';
import { AppError } from '../../runtime/errors';
import type { Logger } from '../../runtime/logger';
import { SIGNATURE_HEADER, signMessage } from '../../runtime/signing';
import { ids } from '../../topics/envelope';
import { reviewDecision, type ReviewAudited, type ReviewDecision, type ReviewResolved } from '../../topics/schemas';
import type { PaymentView } from '../../orchestrator/api/views';
import type { BackofficeOutbox, OutboxEntry } from '../outbox';
import type { OrchestratorClient } from './orchestrator-client';

type Review = NonNullable<PaymentView['review']>;
type Attempt = PaymentView['attempts'][number];
type Resolution = NonNullable<PaymentView['resolutions']>[number];

/** What an operator sends to resolve a review. */
export const resolutionBody = z
  .object({
    /** Chosen by the caller (the page makes one per dialog), so a request sent again is the same resolution. */
    resolutionId: z.uuid({ error: 'a UUID naming this resolution; send the same one again to retry' }),
    attemptId: ids.attemptId,
    decision: reviewDecision,
    note: z
      .string({ error: 'required: what the gateway confirmed, in a sentence' })
      .trim()
      .min(1, 'required: what the gateway confirmed, in a sentence')
      .max(500, 'at most 500 characters'),
  })
  .strict();
export type ResolutionRequest = z.infer<typeof resolutionBody>;

/** Which decisions answer which review (as orchestrator/state/payment.ts decides): did the money move, or come back. */
const DECISIONS: Record<Review['reason'], readonly ReviewDecision[]> = {
  'cancel-unconfirmed': ['paid', 'not-paid'],
  'compensation-unconfirmed': ['refunded'],
};

/** A payment in review as the back office lists it: the attempt in question and what its gateway last said. */
export function reviewItem(payment: PaymentView) {
  const review = payment.review as Review;
  const attempt = payment.attempts.find((candidate) => candidate.id === review.attemptId);
  return {
    paymentId: payment.id,
    type: payment.type,
    accountId: payment.accountId,
    amount: payment.amount,
    currency: payment.currency,
    region: payment.region,
    status: payment.status,
    reason: review.reason,
    since: review.since,
    createdAt: payment.createdAt,
    updatedAt: payment.updatedAt,
    attempt: attempt ?? null,
    gatewayId: attempt?.gatewayId ?? null,
    lastWord: attempt ? lastWordOf(review, attempt) : null,
    decisions: DECISIONS[review.reason],
  };
}

/** What the gateway last said about the attempt, and when: the question the operator puts to the PSP. */
function lastWordOf(review: Review, attempt: Attempt): { at: string | null; text: string } {
  if (attempt.unreadableResult) {
    return { at: attempt.unreadableResult.at, text: `an answer that could not be read (${attempt.unreadableResult.detail}); asked to cancel, never confirmed` };
  }
  if (review.reason === 'compensation-unconfirmed') {
    const sent = attempt.compensationsSent ?? 1;
    return { at: attempt.completedAt ?? null, text: `success after the payment had settled; ${sent} void/refund command${sent === 1 ? '' : 's'} never confirmed` };
  }
  return { at: null, text: `nothing: no answer to the attempt sent ${attempt.dispatchedAt}, nor to the cancel asked when it timed out` };
}

export interface ReviewResolverDeps {
  orchestrator: OrchestratorClient;
  outbox: BackofficeOutbox;
  topics: { reviews: string; audit: string };
  /** The back office's key (RULES_SIGNING_KEY): orchestrators apply only commands it signed. */
  signingKey: string;
  registry: Registry;
  logger: Logger;
  clock: () => Date;
  newId: () => string;
  /** How long to wait for an orchestrator to apply the resolution before answering 202. */
  applyTimeoutMs: number;
  pollMs?: number;
}

export type ResolutionAnswer = { status: 200; resolution: Resolution; payment: PaymentView } | { status: 202; resolutionId: string };

/**
 * Resolves a review: checks it against the payment as the orchestrator has it,
 * records the signed `review.resolved` command and its audit entry together
 * in the outbox, sends them, then waits (bounded) until an orchestrator has
 * applied it. The same resolution id again is the same resolution: recorded
 * and sent once, answered with its outcome.
 */
export function createReviewResolver(deps: ReviewResolverDeps) {
  const { orchestrator, outbox, topics, logger, clock } = deps;
  const pollMs = deps.pollMs ?? 100;
  const resolutions = new Counter({
    name: 'backoffice_review_resolutions_total',
    help: 'Review resolutions asked for, by decision and result (applied, accepted: not applied yet when answered, not_in_review, not_found, conflict)',
    labelNames: ['decision', 'result'],
    registers: [deps.registry],
  });
  const refuse = (decision: ReviewDecision, result: string, error: AppError) => {
    resolutions.inc({ decision, result });
    return error;
  };
  const appliedIn = (payment: PaymentView, resolutionId: string) => payment.resolutions?.find((resolution) => resolution.id === resolutionId);

  return async function resolve(paymentId: string, request: ResolutionRequest, actor: string): Promise<ResolutionAnswer> {
    const { resolutionId, attemptId, decision, note } = request;
    const log = logger.child({ paymentId, attemptId, resolutionId, decision, actor });
    const payment = await orchestrator.payment(paymentId);
    if (!payment) throw refuse(decision, 'not_found', new AppError(404, 'not_found', `no payment ${paymentId}`, 'paymentId'));
    const done = appliedIn(payment, resolutionId);
    if (done) {
      if (done.attemptId !== attemptId || done.decision !== decision || done.note !== note) {
        throw refuse(decision, 'conflict', new AppError(422, 'idempotency_conflict', `resolution ${resolutionId} was applied with another attempt, decision or note`, 'resolutionId'));
      }
      return { status: 200, resolution: done, payment };
    }
    const review = payment.review;
    if (!review) {
      throw refuse(decision, 'not_in_review', new AppError(409, 'not_in_review', `payment ${paymentId} is not in review (status ${payment.status}); nothing was changed`, 'paymentId'));
    }
    if (review.attemptId !== attemptId) {
      throw refuse(decision, 'not_in_review', new AppError(409, 'not_in_review', `payment ${paymentId} is in review for attempt ${review.attemptId}, not ${attemptId}`, 'attemptId'));
    }
    if (!DECISIONS[review.reason].includes(decision)) {
      const allowed = DECISIONS[review.reason].join(' or ');
      throw refuse(decision, 'not_in_review', new AppError(409, 'not_in_review', `a ${review.reason} review is resolved with ${allowed}, not ${decision}`, 'decision'));
    }
    const gatewayId = payment.attempts.find((attempt) => attempt.id === attemptId)?.gatewayId ?? 'unknown';

    const occurredAt = clock().toISOString();
    const command: ReviewResolved = { eventId: deps.newId(), type: 'review.resolved', occurredAt, schemaVersion: 1, resolutionId, paymentId, attemptId, decision, actor, note };
    const audit: ReviewAudited = {
      eventId: deps.newId(),
      type: 'review.audited',
      occurredAt,
      schemaVersion: 1,
      resolutionId,
      paymentId,
      attemptId,
      gatewayId,
      reviewReason: review.reason,
      decision,
      actor,
      note,
    };
    const commandJson = JSON.stringify(command);
    const entries: OutboxEntry[] = [
      { topic: topics.reviews, key: paymentId, value: commandJson, headers: { [SIGNATURE_HEADER]: signMessage(deps.signingKey, paymentId, commandJson) } },
      { topic: topics.audit, key: paymentId, value: JSON.stringify(audit) },
    ];
    // The claim on the resolution id is taken in the same step: a repeat records and sends nothing more.
    const claimed = JSON.stringify({ paymentId, attemptId, decision, note });
    const recorded = await outbox.record(resolutionId, entries, { name: `review-resolution:${resolutionId}`, value: claimed });
    if (!recorded.recorded && recorded.held !== claimed) {
      throw refuse(decision, 'conflict', new AppError(422, 'idempotency_conflict', `resolution ${resolutionId} was sent before with another payment, attempt, decision or note`, 'resolutionId'));
    }
    if (recorded.recorded) {
      const { failed } = await outbox.send(resolutionId, entries);
      if (failed) log.error({ err: failed.error, topic: failed.topic }, 'review resolution recorded but not sent yet; the outbox relay will send it with its audit entry');
      else log.info({ gatewayId, reviewReason: review.reason, note }, 'review resolution sent');
    }

    // An orchestrator applies it through the payment's state machine; wait (bounded) to tell the operator how it went.
    const until = clock().getTime() + deps.applyTimeoutMs;
    for (;;) {
      const now = await orchestrator.payment(paymentId);
      const applied = now && appliedIn(now, resolutionId);
      if (now && applied) {
        resolutions.inc({ decision, result: 'applied' });
        log.info({ status: now.status }, 'review resolution applied');
        return { status: 200, resolution: applied, payment: now };
      }
      if (!now?.review || now.review.attemptId !== attemptId) {
        log.warn('review resolution not applied: the review ended otherwise meanwhile (the gateway answered)');
        throw refuse(decision, 'not_in_review', new AppError(409, 'not_in_review', `payment ${paymentId} left review before this resolution was applied (status ${now?.status ?? 'unknown'}); it changed nothing`, 'paymentId'));
      }
      if (clock().getTime() >= until) break;
      await new Promise((resolveWait) => setTimeout(resolveWait, pollMs));
    }
    resolutions.inc({ decision, result: 'accepted' });
    log.warn({ waitedMs: deps.applyTimeoutMs }, 'review resolution accepted but not applied yet');
    return { status: 202, resolutionId };
  };
}
export type ReviewResolver = ReturnType<typeof createReviewResolver>;
