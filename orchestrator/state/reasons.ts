/**
 * The one table that says which gateway failure codes are worth trying
 * elsewhere. Technical failures are retryable; business declines are final,
 * because another gateway would decline the same client for the same reason.
 * An unknown code is final: retrying an unexplained failure risks paying twice.
 */
const RETRYABLE = new Set(['gateway_error', 'gateway_unavailable', 'timeout', 'rate_limited_by_gateway']);
const FINAL = new Set(['insufficient_funds', 'account_blocked', 'limit_exceeded', 'card_declined', 'fraud_suspected']);

export type FailureClass = 'retryable' | 'final';

export function classifyFailure(reasonCode: string | undefined): FailureClass {
  if (reasonCode !== undefined && RETRYABLE.has(reasonCode)) return 'retryable';
  return 'final';
}

export const KNOWN_REASON_CODES = { retryable: [...RETRYABLE], final: [...FINAL] };
