import { RejectMessage, type MessageMeta } from '../../runtime/kafka';
import type { Logger } from '../../runtime/logger';
import { SIGNATURE_HEADER, verifyMessage } from '../../runtime/signing';
import type { ReviewResolved } from '../../topics/schemas';
import type { OrchestratorMetrics } from '../metrics';
import type { OutcomeApplier } from '../results/apply-outcome';

export interface ReviewResolutionDeps {
  applyOutcome: OutcomeApplier;
  /** The back office's key (RULES_SIGNING_KEY): only the back office decides reviews. */
  signingKey: string;
  metrics: Pick<OrchestratorMetrics, 'reviewResolutions'>;
  /** Told about a command refused for its signature or key, before it is parked. */
  onRefused: (reason: 'bad-signature' | 'wrong-key') => void;
  clock: () => Date;
  logger: Logger;
}

/**
 * Applies the back office's signed `review.resolved` commands through the
 * payment state machine, like any outcome of the attempt under review
 * (ADR 0018). Whichever instance reads a command, the compare-and-set store
 * and the resolution id recorded on the payment make it apply once; one for a
 * payment no longer in review for that attempt changes nothing and is counted
 * as refused. A forged or moved command is parked, never applied.
 */
export function handleReviewResolution(deps: ReviewResolutionDeps) {
  const { applyOutcome, metrics, logger } = deps;
  return async (command: ReviewResolved, meta: Pick<MessageMeta, 'key' | 'raw' | 'headers'>) => {
    const ids = { paymentId: command.paymentId, attemptId: command.attemptId, resolutionId: command.resolutionId };
    if (!verifyMessage(deps.signingKey, meta.key ?? '', meta.raw, meta.headers[SIGNATURE_HEADER])) {
      deps.onRefused('bad-signature');
      logger.critical(ids, 'review resolution refused: its signature does not verify with the back office key');
      throw new RejectMessage('bad-signature', `review.resolved ${command.resolutionId} for ${command.paymentId}`);
    }
    if (meta.key !== command.paymentId) {
      deps.onRefused('wrong-key');
      logger.critical({ ...ids, key: meta.key }, 'review resolution refused: published under another payment key');
      throw new RejectMessage('wrong-key', `review.resolved for ${command.paymentId} under key ${String(meta.key)}`);
    }
    const { decision, actor, note } = command;
    const applied = await applyOutcome(command.paymentId, {
      kind: 'review-resolved',
      attemptId: command.attemptId,
      at: command.occurredAt,
      now: deps.clock().toISOString(),
      resolutionId: command.resolutionId,
      decision,
      actor,
      note,
    });
    if (applied === 'unknown-payment' || applied === 'unknown-attempt') {
      throw new RejectMessage(applied, `review.resolved ${command.resolutionId} for ${command.paymentId}/${command.attemptId}`);
    }
    const result = applied === 'applied' ? 'applied' : applied === 'refused' ? 'refused' : 'duplicate';
    metrics.reviewResolutions.inc({ decision, result });
    const fields = { ...ids, decision, actor, note, result };
    if (result === 'refused') logger.warn(fields, 'review resolution refused: the payment is not in review for that attempt, or the decision does not answer its review');
    else logger.info(fields, result === 'applied' ? 'review resolved' : 'review resolution already applied');
  };
}
