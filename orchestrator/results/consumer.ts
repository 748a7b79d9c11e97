import { RejectMessage, type MessageMeta } from '../../runtime/kafka';
import type { Logger } from '../../runtime/logger';
import { resultIdentity, type ResultMessage } from '../../topics/schemas';
import type { Outcome } from '../state/payment';
import type { OutcomeApplier } from './apply-outcome';
import { isoTime } from '../../runtime/iso-time';

/** What a message on the results topic means for the attempt it names. */
export function outcomeOf(message: ResultMessage, at: string): Outcome | undefined {
  const attemptId = message.attemptId;
  if (message.type === 'gateway.result') {
    const requested = message.requestedAt === undefined ? {} : { requestedAt: message.requestedAt };
    return message.outcome === 'success' ? { kind: 'success', attemptId, at, ...requested } : { kind: 'failure', attemptId, reasonCode: message.reasonCode, at, ...requested };
  }
  if (message.command === 'cancel') {
    // Cancelled, never seen, or already refunded: in every case this gateway will not keep the money moving.
    return message.result === 'already-succeeded' ? { kind: 'success', attemptId, at } : { kind: 'cancel-confirmed', attemptId, at };
  }
  // A compensation is done when the money came back or never moved; anything else is for a person.
  return message.result === 'compensated' || message.result === 'cancelled' ? { kind: 'compensation-confirmed', attemptId, at } : undefined;
}

/**
 * When a gateway's answer happened: when it reached Kafka (the broker's
 * append time), or the gateway's own `occurredAt` if that is earlier (a
 * gateway that waited to publish is not charged for it). Never later than
 * the broker time, so a gateway clock running ahead cannot make an answer
 * look later, and our own reading delay never counts. Epoch ms in, ISO out.
 */
export function answeredAt(brokerMs: number, occurredAt: string | undefined, fallback: Date): string {
  const broker = Number.isFinite(brokerMs) && brokerMs > 0 ? brokerMs : fallback.getTime();
  const claimed = occurredAt === undefined ? Number.NaN : Date.parse(occurredAt);
  return isoTime(Number.isFinite(claimed) ? Math.min(broker, claimed) : broker);
}

/**
 * Turns results-topic messages into outcomes for the payments' state
 * machine. A result for a payment or attempt this stack never recorded may
 * still mean money moved, so it is parked on the dead-letter topic for
 * reconciliation rather than dropped.
 */
export function handleResultMessage(applyOutcome: OutcomeApplier, clock: () => Date, logger: Logger) {
  return async (message: ResultMessage, meta: Pick<MessageMeta, 'timestampMs'>) => {
    const outcome = outcomeOf(message, answeredAt(meta.timestampMs, message.occurredAt, clock()));
    const ids = { paymentId: message.paymentId, attemptId: message.attemptId, gatewayId: message.gatewayId };
    if (!outcome) {
      logger.critical({ ...ids, message }, 'compensation not confirmed by the gateway: a person must reconcile this attempt');
      throw new RejectMessage('needs-reconciliation', `${message.type} for ${message.paymentId}/${message.attemptId} cannot be applied`);
    }
    const applied = await applyOutcome(message.paymentId, Object.assign(outcome, { now: isoTime(clock().getTime()) }));
    if (applied === 'unknown-payment' || applied === 'unknown-attempt') {
      throw new RejectMessage(applied, `${message.type} for ${message.paymentId}/${message.attemptId} from ${message.gatewayId}`);
    }
  };
}

/**
 * A results-topic message that fails the contract but names a payment and
 * attempt: the attempt's outcome is unknown, so it goes to the state machine
 * as such (cancel first, never a blind failover) with a link to where it is
 * parked, and is parked as `unreadable-result`. One that names nothing we
 * know is parked as plain schema noise.
 */
export function handleUnreadableResult(applyOutcome: OutcomeApplier, topic: string, clock: () => Date, logger: Logger) {
  return async (json: unknown, detail: string, meta: Pick<MessageMeta, 'partition' | 'offset' | 'timestampMs'>) => {
    const identity = resultIdentity.safeParse(json);
    if (!identity.success) return;
    const { paymentId, attemptId, gatewayId } = identity.data;
    const deadLetter = `${topic}:${meta.partition}:${meta.offset}`;
    const at = answeredAt(meta.timestampMs, undefined, clock());
    const applied = await applyOutcome(paymentId, { kind: 'unreadable', attemptId, at, now: clock().toISOString(), deadLetter, detail });
    if (applied === 'unknown-payment' || applied === 'unknown-attempt') return;
    logger.critical({ paymentId, attemptId, gatewayId, deadLetter, detail }, 'result for a known attempt could not be read: its outcome is unknown');
    throw new RejectMessage('unreadable-result', `result for ${paymentId}/${attemptId} could not be read`);
  };
}
