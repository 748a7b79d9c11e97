import type { Express, Request, Response } from 'express';
import { requireScope, type Principal, type TokenVerifier } from '../../runtime/auth';
import { AppError } from '../../runtime/errors';
import { parseOr400 } from '../../runtime/http';
import { ids } from '../../topics/envelope';
import type { ReviewAudited } from '../../topics/schemas';
import type { OrchestratorClient } from './orchestrator-client';
import { resolutionBody, reviewItem, type ReviewResolver } from './resolve';

/** Listing payments in review and reading their resolutions' trail. */
export const REVIEWS_READ_SCOPE = 'reviews:read';
/** Resolving a review: deciding that a gateway paid or did not, which settles or fails over a payment. */
export const REVIEWS_RESOLVE_SCOPE = 'reviews:resolve';

/** Every review resolution on the audit topic, by payment id, oldest first. */
export function createReviewTrail() {
  const byPayment = new Map<string, ReviewAudited[]>();
  return {
    add(event: ReviewAudited): void {
      const entries = byPayment.get(event.paymentId) ?? [];
      // The outbox may send an entry twice (a crash after Kafka took it): one resolution is one entry.
      if (entries.some((entry) => entry.resolutionId === event.resolutionId)) return;
      byPayment.set(event.paymentId, [...entries, event]);
    },
    of: (paymentId: string): readonly ReviewAudited[] => byPayment.get(paymentId) ?? [],
  };
}
export type ReviewTrail = ReturnType<typeof createReviewTrail>;

export interface ReviewRouteDeps {
  orchestrator: OrchestratorClient;
  resolve: ReviewResolver;
  trail: ReviewTrail;
  verifyToken: TokenVerifier;
}

export function reviewRoutes(app: Express, deps: ReviewRouteDeps): void {
  const canRead = requireScope(deps.verifyToken, REVIEWS_READ_SCOPE);
  const canResolve = requireScope(deps.verifyToken, REVIEWS_RESOLVE_SCOPE);
  const paymentIdOf = (req: Request<{ paymentId: string }>) => parseOr400(ids.paymentId, req.params.paymentId, 'paymentId');

  app.get('/v1/reviews', canRead, async (_req, res) => {
    const flagged = await deps.orchestrator.reviews();
    const reviews = flagged.filter((payment) => payment.review !== undefined).map(reviewItem);
    res.json({ reviews: reviews.sort((a, b) => a.since.localeCompare(b.since)) });
  });

  app.post('/v1/reviews/:paymentId/resolution', canResolve, async (req: Request<{ paymentId: string }>, res: Response) => {
    const paymentId = paymentIdOf(req);
    const body = parseOr400(resolutionBody, req.body ?? {});
    const answer = await deps.resolve(paymentId, body, (res.locals.principal as Principal).subject);
    if (answer.status === 202) {
      res.status(202).json({
        resolutionId: answer.resolutionId,
        state: 'accepted',
        message: 'recorded and sent; no orchestrator has applied it yet. Send the same request again to learn its outcome.',
      });
      return;
    }
    res.json({ resolution: answer.resolution, payment: answer.payment });
  });

  app.get('/v1/reviews/:paymentId/audit', canRead, (req: Request<{ paymentId: string }>, res) => {
    const paymentId = paymentIdOf(req);
    const entries = deps.trail.of(paymentId);
    if (entries.length === 0) throw new AppError(404, 'not_found', `no review resolution recorded for payment ${paymentId}`, 'paymentId');
    res.json({
      paymentId,
      entries: entries.map((entry) => ({
        at: entry.occurredAt,
        actor: entry.actor,
        resolutionId: entry.resolutionId,
        attemptId: entry.attemptId,
        gatewayId: entry.gatewayId,
        reviewReason: entry.reviewReason,
        decision: entry.decision,
        note: entry.note,
        eventId: entry.eventId,
      })),
    });
  });
}
