import type { PaymentType } from '../state/payment';
import type { Breakers } from '../health/breakers';
import type { HealthWeights } from '../health/weights';
import type { RateLimiter } from './rate-limit';
import { DEFAULT_TIMEOUT_MS, type RuleBook } from './rules';
import { selectGateway, type RoutablePayment, type RoutingDecision } from './select';

export type TimeoutPolicy = 'failover' | 'cancel-first';

export interface Router {
  /** Chooses a gateway among those eligible now; synchronous, so the state machine can call it. */
  route(payment: RoutablePayment, tried: ReadonlySet<string>): RoutingDecision;
  /**
   * Takes a unit of the chosen gateway's shared burst budget before dispatch.
   * False means it is spent: the gateway is then excluded as rate-limited for
   * the rest of this second, and the caller routes again.
   */
  reserve(gatewayId: string): Promise<boolean>;
  timeoutMsOf(gatewayId: string): number;
  timeoutPolicyOf(gatewayId: string, type: PaymentType): TimeoutPolicy;
}

export interface RouterDeps {
  ruleBook: RuleBook;
  breakers: Pick<Breakers, 'admits'>;
  healthWeights: Pick<HealthWeights, 'effectiveWeight'>;
  rateLimiter: RateLimiter;
  random: () => number;
  clock: () => Date;
  onRateLimited: (gatewayId: string) => void;
}

/**
 * Selection over the rules in force, with the live exclusions (open breaker,
 * spent rate limit) and health-aware weights. Only the gateway the weighted
 * choice picked is asked for budget, so a payment costs one Redis round trip
 * when its gateway has a limit and none when it has not.
 */
export function createRouter({ ruleBook, breakers, healthWeights, rateLimiter, random, clock, onRateLimited }: RouterDeps): Router {
  const spentUntilSecond = new Map<string, number>();
  const currentSecond = () => Math.floor(clock().getTime() / 1000);
  const isSpent = (gatewayId: string) => spentUntilSecond.get(gatewayId) === currentSecond();

  return {
    timeoutMsOf: (gatewayId) => ruleBook.ruleOf(gatewayId)?.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    timeoutPolicyOf: (gatewayId, type) => ruleBook.ruleOf(gatewayId)?.timeoutPolicy[type] ?? (type === 'withdrawal' ? 'cancel-first' : 'failover'),
    route: (payment, tried) =>
      selectGateway({
        payment,
        rules: ruleBook.rules(),
        rulesVersion: ruleBook.version(),
        tried,
        random,
        exclude: (gatewayId) => (isSpent(gatewayId) ? 'rate-limited' : breakers.admits(gatewayId) ? undefined : 'circuit-open'),
        weightOf: (rule) => healthWeights.effectiveWeight(rule.gatewayId, rule.weight, rule.timeoutMs),
      }),
    async reserve(gatewayId) {
      const limit = ruleBook.ruleOf(gatewayId)?.rateLimitPerSecond;
      if (limit === undefined) return true;
      if (await rateLimiter.take(gatewayId, limit)) return true;
      spentUntilSecond.set(gatewayId, currentSecond());
      onRateLimited(gatewayId);
      return false;
    },
  };
}
