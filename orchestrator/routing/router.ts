import type { PaymentType } from '../state/payment';
import type { GatewayHealth } from '../health/gateway-health';
import type { RateLimiter } from './rate-limit';
import { DEFAULT_TIMEOUT_MS, type RuleBook } from './rules';
import type { GatewayRule } from '../../topics/schemas';
import { selectGateway, type ExclusionReason, type RoutablePayment, type RoutingDecision } from './select';

export type TimeoutPolicy = 'failover' | 'cancel-first';

export interface Router {
  /** Chooses a gateway among those eligible now; synchronous, so the state machine can call it. */
  route(payment: RoutablePayment, tried: ReadonlySet<string>): RoutingDecision;
  /**
   * Claims what dispatching to the chosen gateway needs: its half-open trial,
   * if its breaker is half-open, and a unit of its shared burst budget. False
   * means one of them is not to be had: the gateway is then excluded (as
   * circuit-open, or as rate-limited until a unit of its budget is free again)
   * and the caller routes again.
   */
  reserve(gatewayId: string): Promise<boolean>;
  timeoutMsOf(gatewayId: string): number;
  timeoutPolicyOf(gatewayId: string, type: PaymentType): TimeoutPolicy;
}

export interface RouterDeps {
  ruleBook: RuleBook;
  breakers: Pick<GatewayHealth, 'admits' | 'stateOf' | 'tryAcquireTrial' | 'releaseTrial'>;
  healthWeights: Pick<GatewayHealth, 'effectiveWeight'>;
  rateLimiter: RateLimiter;
  random: () => number;
  clock: () => Date;
}

/**
 * Selection over the rules in force, with the live exclusions (open breaker,
 * spent rate limit) and health-aware weights. Only the gateway the weighted
 * choice picked is asked for budget, so a payment costs one Redis round trip
 * when its gateway has a limit and none when it has not.
 */
export function createRouter({ ruleBook, breakers, healthWeights, rateLimiter, random, clock }: RouterDeps): Router {
  /** Epoch ms until which a gateway's shared budget is known spent: the limiter said when its oldest unit frees. */
  const spentUntil = new Map<string, number>();
  const isSpent = (gatewayId: string) => (spentUntil.get(gatewayId) ?? 0) > clock().getTime();
  const timeoutMsOf = (gatewayId: string) => ruleBook.ruleOf(gatewayId)?.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  // Made once, not per payment: tsx compiles every named function expression with esbuild's keepNames, so each
  // closure made per call also cost a call to Object.defineProperty (docs/benchmarks/efficiency.md, session 10).
  const exclude = (gatewayId: string): ExclusionReason | undefined =>
    isSpent(gatewayId) ? 'rate-limited' : breakers.admits(gatewayId, clock().getTime()) ? undefined : 'circuit-open';
  const weightOf = (rule: GatewayRule) => healthWeights.effectiveWeight(rule.gatewayId, rule.weight, rule.timeoutMs);

  return {
    timeoutMsOf,
    timeoutPolicyOf: (gatewayId, type) => ruleBook.ruleOf(gatewayId)?.timeoutPolicy[type] ?? (type === 'withdrawal' ? 'cancel-first' : 'failover'),
    route: (payment, tried) => selectGateway({ payment, rules: ruleBook.rules(), rulesVersion: ruleBook.version(), tried, random, exclude, weightOf }),
    async reserve(gatewayId) {
      // A half-open gateway takes one trial, held until its outcome is due.
      const claimsTrial = breakers.stateOf(gatewayId) === 'half-open';
      if (!breakers.tryAcquireTrial(gatewayId, clock().getTime(), timeoutMsOf(gatewayId) + 1_000)) return false;
      const limit = ruleBook.ruleOf(gatewayId)?.rateLimitPerSecond;
      if (limit === undefined) return true;
      const taken = await rateLimiter.take(gatewayId, limit);
      if (taken.taken) return true;
      // Only a trial this call claimed: the breaker may have changed while the budget was asked.
      if (claimsTrial) breakers.releaseTrial(gatewayId);
      spentUntil.set(gatewayId, clock().getTime() + taken.retryAfterMs);
      return false;
    },
  };
}
