import type { GatewayRule } from '../../topics/schemas';
import type { PaymentType } from '../state/payment';

/** What selection needs to know about a payment. */
export interface RoutablePayment {
  type: PaymentType;
  amount: string;
  currency: string;
  region: string;
}

export type ExclusionReason =
  | 'region'
  | 'payment-type'
  | 'currency'
  | 'no-amount-bound'
  | 'below-min-amount'
  | 'above-max-amount'
  | 'disabled'
  | 'unavailable'
  | 'zero-weight'
  | 'already-tried'
  | 'circuit-open'
  | 'rate-limited';

/** Why this gateway: kept on every attempt so ops can answer "why this gateway?". */
export interface RoutingDecision {
  chosen: string | null;
  candidates: Array<{ gatewayId: string; weight: number }>;
  excluded: Array<{ gatewayId: string; reason: ExclusionReason }>;
  rulesVersion: string;
}

export interface SelectionInput {
  payment: RoutablePayment;
  rules: readonly GatewayRule[];
  rulesVersion: string;
  tried: ReadonlySet<string>;
  /** Uniform in [0, 1); injected so tests are deterministic. */
  random: () => number;
  /** Run-time exclusions beyond the rules (breaker, rate limit), asked only of otherwise eligible gateways. */
  exclude?: (gatewayId: string) => ExclusionReason | undefined;
  /** Run-time weight (health-aware); defaults to the rule's weight. */
  weightOf?: (rule: GatewayRule) => number;
}

function ruleExclusion(payment: RoutablePayment, rule: GatewayRule): ExclusionReason | undefined {
  if (!rule.regions.includes('*') && !rule.regions.includes(payment.region)) return 'region';
  if (!rule.paymentTypes.includes(payment.type)) return 'payment-type';
  if (!rule.currencies.includes(payment.currency)) return 'currency';
  // The payment's own currency's bound: minor units mean different sums in different currencies, so a served
  // currency without one (a rule that did not come through the back office, which refuses it) is not served at all.
  const bound = rule.amountBounds?.[payment.currency];
  if (bound === undefined) return 'no-amount-bound';
  const amount = BigInt(payment.amount);
  if (bound.min !== undefined && amount < BigInt(bound.min)) return 'below-min-amount';
  if (bound.max !== undefined && amount > BigInt(bound.max)) return 'above-max-amount';
  if (!rule.enabled) return 'disabled';
  if (!rule.available) return 'unavailable';
  return undefined;
}

/** The currencies a rule serves but gives no amount bound for: selection never routes them (`no-amount-bound`). */
export const unboundedCurrencies = (rule: Pick<GatewayRule, 'currencies' | 'amountBounds'>): string[] =>
  rule.currencies.filter((currency) => rule.amountBounds?.[currency] === undefined);

/** The gateways whose rules could ever serve this payment, ignoring availability and health. */
export function servesPayment(payment: RoutablePayment, rule: GatewayRule): boolean {
  const reason = ruleExclusion(payment, rule);
  return reason === undefined || reason === 'disabled' || reason === 'unavailable';
}

/** Picks a gateway among the eligible ones, by weight. Pure: same input, same decision. */
export function selectGateway(input: SelectionInput): RoutingDecision {
  const candidates: RoutingDecision['candidates'] = [];
  const excluded: RoutingDecision['excluded'] = [];
  for (const rule of input.rules) {
    const reason =
      ruleExclusion(input.payment, rule) ??
      (input.tried.has(rule.gatewayId) ? 'already-tried' : undefined) ??
      input.exclude?.(rule.gatewayId);
    const weight = reason ? 0 : (input.weightOf?.(rule) ?? rule.weight);
    if (reason) excluded.push({ gatewayId: rule.gatewayId, reason });
    // NaN (e.g. a 0/0 health ratio) or Infinity would poison the total and pin every choice to the last candidate.
    else if (!(weight > 0) || !Number.isFinite(weight)) excluded.push({ gatewayId: rule.gatewayId, reason: 'zero-weight' });
    else candidates.push({ gatewayId: rule.gatewayId, weight });
  }
  return { chosen: pickByWeight(candidates, input.random()), candidates, excluded, rulesVersion: input.rulesVersion };
}

function pickByWeight(candidates: RoutingDecision['candidates'], uniform: number): string | null {
  const total = candidates.reduce((sum, candidate) => sum + candidate.weight, 0);
  let point = uniform * total;
  for (const candidate of candidates) {
    point -= candidate.weight;
    if (point < 0) return candidate.gatewayId;
  }
  return candidates.at(-1)?.gatewayId ?? null;
}
