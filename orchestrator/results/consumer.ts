import { RejectMessage } from '../../runtime/kafka';
import type { GatewayResult } from '../../topics/schemas';
import type { OutcomeApplier } from './apply-outcome';

/**
 * Turns a gateway result message into an outcome for the payment's state
 * machine. A result for a payment this stack never recorded may still mean
 * money moved, so it is parked on the dead-letter topic for reconciliation.
 */
export function handleGatewayResult(applyOutcome: OutcomeApplier, clock: () => Date) {
  return async (result: GatewayResult) => {
    const at = clock().toISOString();
    const outcome =
      result.outcome === 'success'
        ? { kind: 'success' as const, attemptId: result.attemptId, at }
        : { kind: 'failure' as const, attemptId: result.attemptId, reasonCode: result.reasonCode, at };
    if ((await applyOutcome(result.paymentId, outcome)) === 'unknown-payment') {
      throw new RejectMessage('unknown-payment', `no payment ${result.paymentId} (attempt ${result.attemptId}, ${result.outcome})`);
    }
  };
}
