import { RejectMessage } from '../../runtime/kafka';
import type { Logger } from '../../runtime/logger';
import type { ResultMessage } from '../../topics/schemas';
import type { Outcome } from '../state/payment';
import type { OutcomeApplier } from './apply-outcome';

/** What a message on the results topic means for the attempt it names. */
export function outcomeOf(message: ResultMessage, at: string): Outcome | undefined {
  const attemptId = message.attemptId;
  if (message.type === 'gateway.result') {
    return message.outcome === 'success' ? { kind: 'success', attemptId, at } : { kind: 'failure', attemptId, reasonCode: message.reasonCode, at };
  }
  if (message.command === 'cancel') {
    // Cancelled, never seen, or already refunded: in every case this gateway will not keep the money moving.
    return message.result === 'already-succeeded' ? { kind: 'success', attemptId, at } : { kind: 'cancel-confirmed', attemptId, at };
  }
  // A compensation is done when the money came back or never moved; anything else is for a person.
  return message.result === 'compensated' || message.result === 'cancelled' ? { kind: 'compensation-confirmed', attemptId, at } : undefined;
}

/**
 * Turns results-topic messages into outcomes for the payments' state
 * machine. A result for a payment or attempt this stack never recorded may
 * still mean money moved, so it is parked on the dead-letter topic for
 * reconciliation rather than dropped.
 */
export function handleResultMessage(applyOutcome: OutcomeApplier, clock: () => Date, logger: Logger) {
  return async (message: ResultMessage) => {
    const outcome = outcomeOf(message, clock().toISOString());
    const ids = { paymentId: message.paymentId, attemptId: message.attemptId, gatewayId: message.gatewayId };
    if (!outcome) {
      logger.critical({ ...ids, message }, 'compensation not confirmed by the gateway: a person must reconcile this attempt');
      throw new RejectMessage('needs-reconciliation', `${message.type} for ${message.paymentId}/${message.attemptId} cannot be applied`);
    }
    const applied = await applyOutcome(message.paymentId, outcome);
    if (applied === 'unknown-payment' || applied === 'unknown-attempt') {
      throw new RejectMessage(applied, `${message.type} for ${message.paymentId}/${message.attemptId} from ${message.gatewayId}`);
    }
  };
}
