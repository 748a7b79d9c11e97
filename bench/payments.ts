// The payments a benchmark sends, derived from the seed rules so that every
// one of them has a gateway (a 422 no_gateway would be measured as an error).
import type { GatewayRule } from '../topics/schemas';

export type PaymentType = GatewayRule['paymentTypes'][number];

export interface PaymentBody {
  type: PaymentType;
  accountId: string;
  amount: string;
  currency: string;
  region: string;
}

/** Amounts are drawn in this range (minor units: 10.00 to 1,000.00), which every seed rule accepts. */
const MIN_AMOUNT = 1_000n;
const MAX_AMOUNT = 100_000n;
/** Payments are spread over this many accounts, as a platform's would be. */
const ACCOUNTS = 1_000;

interface Route {
  type: PaymentType;
  region: string;
  currency: string;
}

const serves = (rule: GatewayRule, route: Route) =>
  rule.enabled &&
  rule.available &&
  rule.regions.includes(route.region) &&
  rule.paymentTypes.includes(route.type) &&
  rule.currencies.includes(route.currency) &&
  // A served currency without a bound is not routed (no-amount-bound).
  rule.amountBounds?.[route.currency] !== undefined &&
  BigInt(rule.amountBounds[route.currency]?.min ?? '1') <= MIN_AMOUNT &&
  BigInt(rule.amountBounds[route.currency]?.max ?? MAX_AMOUNT) >= MAX_AMOUNT;

/**
 * Every (type, region, currency) that at least `minGateways` rules serve for
 * the whole amount range. The failover benchmarks ask for two, so that a
 * payment whose gateway fails always has another to go to.
 */
export function routesOf(rules: readonly GatewayRule[], types: readonly PaymentType[], minGateways: number): Route[] {
  const candidates = rules.flatMap((rule) =>
    types.flatMap((type) => rule.regions.filter((region) => region !== '*').flatMap((region) => rule.currencies.map((currency) => ({ type, region, currency })))),
  );
  const unique = [...new Map(candidates.map((route) => [`${route.type}|${route.region}|${route.currency}`, route])).values()];
  const served = unique.filter((route) => rules.filter((rule) => serves(rule, route)).length >= minGateways);
  if (served.length === 0) throw new Error(`no payment route is served by ${minGateways} gateway(s) for amounts ${MIN_AMOUNT}–${MAX_AMOUNT}: check the rules file`);
  return served;
}

/** Payment number `index`: the routes in turn, a random amount and one of many accounts. */
export function paymentBody(routes: readonly Route[], index: number): PaymentBody {
  const route = routes[index % routes.length] as Route;
  const amount = MIN_AMOUNT + BigInt(Math.floor(Math.random() * Number(MAX_AMOUNT - MIN_AMOUNT + 1n)));
  return { ...route, accountId: `bench-acc-${index % ACCOUNTS}`, amount: amount.toString() };
}
