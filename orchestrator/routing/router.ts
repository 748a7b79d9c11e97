import type { RuleBook } from './rules';
import { selectGateway, type RoutablePayment, type RoutingDecision } from './select';

export interface Router {
  route(payment: RoutablePayment, tried: ReadonlySet<string>): RoutingDecision;
  timeoutMsOf(gatewayId: string): number;
}

/** Selection over the rules in force, with the random source injected. */
export function createRouter(ruleBook: RuleBook, random: () => number): Router {
  return {
    route: (payment, tried) =>
      selectGateway({ payment, rules: ruleBook.rules(), rulesVersion: ruleBook.version(), tried, random }),
    timeoutMsOf: (gatewayId) => ruleBook.timeoutMsOf(gatewayId),
  };
}
