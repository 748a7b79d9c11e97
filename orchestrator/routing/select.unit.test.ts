import { gatewayRule, type GatewayRule } from '../../topics/schemas';
import { validRule as rule } from '../test-fixtures';
import { selectGateway, servesPayment, unboundedCurrencies, type ExclusionReason, type RoutablePayment, type SelectionInput } from './select';

/** The largest double below 1: what Math.random() can return at most. */
const JUST_BELOW_ONE = 1 - 2 ** -53;

const euDeposit: RoutablePayment = { type: 'deposit', amount: '10000', currency: 'EUR', region: 'EU' };

function select(overrides: Partial<SelectionInput> & Pick<SelectionInput, 'rules'>) {
  return selectGateway({ payment: euDeposit, rulesVersion: 'v-test', tried: new Set(), random: () => 0, ...overrides });
}

/** The one reason a single gateway is excluded for, or undefined if it is a candidate. */
function reasonFor(payment: RoutablePayment, gateway: GatewayRule): ExclusionReason | undefined {
  const decision = select({ payment, rules: [gateway] });
  return decision.excluded.find((entry) => entry.gatewayId === gateway.gatewayId)?.reason;
}

describe('selectGateway: which gateways are eligible', () => {
  test('When a gateway serves the payment region, then it is a candidate and is chosen', () => {
    const decision = select({ rules: [rule('eu', { regions: ['US', 'EU'] })] });
    expect(decision).toEqual({ chosen: 'eu', candidates: [{ gatewayId: 'eu', weight: 1 }], excluded: [], rulesVersion: 'v-test' });
  });

  test("When a gateway's regions do not include the payment region, then it is excluded for 'region'", () => {
    expect(reasonFor(euDeposit, rule('us', { regions: ['US'] }))).toBe('region');
  });

  test("When a gateway lists the '*' region, then it serves every region", () => {
    for (const region of ['EU', 'US', 'LATAM', 'APAC']) {
      expect(reasonFor({ ...euDeposit, region }, rule('anywhere', { regions: ['*'] }))).toBeUndefined();
    }
  });

  test("When a gateway does not handle the payment type, then it is excluded for 'payment-type'", () => {
    const payoutsOnly = rule('payouts', { paymentTypes: ['withdrawal'] });
    expect(reasonFor(euDeposit, payoutsOnly)).toBe('payment-type');
    expect(reasonFor({ ...euDeposit, type: 'withdrawal' }, payoutsOnly)).toBeUndefined();
  });

  test("When a gateway does not handle the currency, then it is excluded for 'currency'", () => {
    expect(reasonFor({ ...euDeposit, currency: 'USD' }, rule('eur-only'))).toBe('currency');
    expect(reasonFor({ ...euDeposit, currency: 'USD' }, rule('both', { currencies: ['EUR', 'USD'] }))).toBeUndefined();
  });

  test("When the amount is below the gateway's minimum, then it is excluded for 'below-min-amount', and the minimum itself is served", () => {
    const gateway = rule('min', { amountBounds: { EUR: { min: '500' } } });
    expect(reasonFor({ ...euDeposit, amount: '499' }, gateway)).toBe('below-min-amount');
    expect(reasonFor({ ...euDeposit, amount: '500' }, gateway)).toBeUndefined();
    expect(reasonFor({ ...euDeposit, amount: '501' }, gateway)).toBeUndefined();
  });

  test("When the amount is above the gateway's maximum, then it is excluded for 'above-max-amount', and the maximum itself is served", () => {
    const gateway = rule('max', { amountBounds: { EUR: { max: '500' } } });
    expect(reasonFor({ ...euDeposit, amount: '501' }, gateway)).toBe('above-max-amount');
    expect(reasonFor({ ...euDeposit, amount: '500' }, gateway)).toBeUndefined();
    expect(reasonFor({ ...euDeposit, amount: '1' }, gateway)).toBeUndefined();
  });

  test('When amounts differ only beyond 2^53, then the limits are still compared exactly (as integers, not floats)', () => {
    // As JavaScript numbers these two are the same value; as amounts they are one minor unit apart.
    const twoTo53 = '9007199254740992';
    const twoTo53PlusOne = '9007199254740993';
    expect(Number(twoTo53)).toBe(Number(twoTo53PlusOne));

    expect(reasonFor({ ...euDeposit, amount: twoTo53 }, rule('min', { amountBounds: { EUR: { min: twoTo53PlusOne } } }))).toBe('below-min-amount');
    expect(reasonFor({ ...euDeposit, amount: twoTo53PlusOne }, rule('min', { amountBounds: { EUR: { min: twoTo53PlusOne } } }))).toBeUndefined();
    expect(reasonFor({ ...euDeposit, amount: twoTo53PlusOne }, rule('max', { amountBounds: { EUR: { max: twoTo53 } } }))).toBe('above-max-amount');
    expect(reasonFor({ ...euDeposit, amount: twoTo53 }, rule('max', { amountBounds: { EUR: { max: twoTo53 } } }))).toBeUndefined();
    // The largest amount the contract allows (18 digits).
    expect(reasonFor({ ...euDeposit, amount: '999999999999999999' }, rule('max', { amountBounds: { EUR: { max: '999999999999999998' } } }))).toBe(
      'above-max-amount',
    );
    expect(reasonFor({ ...euDeposit, amount: '999999999999999999' }, rule('max', { amountBounds: { EUR: { max: '999999999999999999' } } }))).toBeUndefined();
  });

  test("When a rule bounds each currency differently, then the payment's own currency's bound applies", () => {
    const gateway = rule('multi', { currencies: ['EUR', 'JPY'], amountBounds: { EUR: { min: '100', max: '50000000' }, JPY: { min: '100', max: '8000000000' } } });
    // 100,000,000 minor units: 1,000,000 EUR (over the EUR cap) but 100,000,000 JPY (within the JPY cap).
    expect(reasonFor({ ...euDeposit, amount: '100000000' }, gateway)).toBe('above-max-amount');
    expect(reasonFor({ ...euDeposit, currency: 'JPY', amount: '100000000' }, gateway)).toBeUndefined();
    expect(reasonFor({ ...euDeposit, currency: 'JPY', amount: '8000000001' }, gateway)).toBe('above-max-amount');
    expect(reasonFor({ ...euDeposit, currency: 'JPY', amount: '99' }, gateway)).toBe('below-min-amount');
  });

  test("When a rule serves a currency without a bound for it (it did not come through the back office), then that currency is excluded for 'no-amount-bound', whatever the amount", () => {
    const gateway = rule('partial', { currencies: ['EUR', 'USD'], amountBounds: { EUR: { max: '500' } } });
    expect(reasonFor({ ...euDeposit, currency: 'USD', amount: '1' }, gateway)).toBe('no-amount-bound');
    expect(reasonFor({ ...euDeposit, currency: 'USD', amount: '999999999' }, gateway)).toBe('no-amount-bound');
    expect(reasonFor({ ...euDeposit, amount: '500' }, gateway)).toBeUndefined();
    expect(unboundedCurrencies(gateway)).toEqual(['USD']);
    // A legacy rule (minAmount/maxAmount, dropped by the schema) has no bound at all: it routes nothing.
    const legacy = gatewayRule.parse({ ...rule('legacy'), amountBounds: undefined, minAmount: '100', maxAmount: '500' });
    expect(reasonFor(euDeposit, legacy)).toBe('no-amount-bound');
    expect(servesPayment(euDeposit, legacy)).toBe(false);
  });

  test('When limits are compared, then they are compared as numbers, not as strings', () => {
    // '9' > '10' as strings; 9 < 10 as amounts.
    expect(reasonFor({ ...euDeposit, amount: '9' }, rule('min', { amountBounds: { EUR: { min: '10' } } }))).toBe('below-min-amount');
    expect(reasonFor({ ...euDeposit, amount: '10' }, rule('max', { amountBounds: { EUR: { max: '9' } } }))).toBe('above-max-amount');
  });

  test("When a gateway is disabled, then it is excluded for 'disabled'", () => {
    expect(reasonFor(euDeposit, rule('off', { enabled: false }))).toBe('disabled');
  });

  test("When a gateway is marked unavailable, then it is excluded for 'unavailable'", () => {
    expect(reasonFor(euDeposit, rule('down', { available: false, unavailableReason: 'maintenance' }))).toBe('unavailable');
  });

  test("When the payment already tried a gateway, then it is excluded for 'already-tried'", () => {
    const decision = select({ rules: [rule('a'), rule('b')], tried: new Set(['a']) });
    expect(decision.excluded).toEqual([{ gatewayId: 'a', reason: 'already-tried' }]);
    expect(decision.chosen).toBe('b');
  });

  test("When a gateway's rule weight is zero, then it is excluded for 'zero-weight' and never chosen", () => {
    const decision = select({ rules: [rule('zero', { weight: 0 }), rule('one')], random: () => 0 });
    expect(decision.excluded).toEqual([{ gatewayId: 'zero', reason: 'zero-weight' }]);
    expect(decision.candidates).toEqual([{ gatewayId: 'one', weight: 1 }]);
    expect(decision.chosen).toBe('one');
  });

  test('When a gateway fails several checks, then the first in order (rules, then tried, then run-time) is reported', () => {
    const decision = select({
      rules: [
        rule('wrong-region-and-off', { regions: ['US'], enabled: false }),
        rule('off-and-down', { enabled: false, available: false }),
        rule('down-and-tried', { available: false }),
        rule('tried-and-open', {}),
      ],
      tried: new Set(['down-and-tried', 'tried-and-open']),
      exclude: () => 'circuit-open',
    });
    expect(decision.excluded).toEqual([
      { gatewayId: 'wrong-region-and-off', reason: 'region' },
      { gatewayId: 'off-and-down', reason: 'disabled' },
      { gatewayId: 'down-and-tried', reason: 'unavailable' },
      { gatewayId: 'tried-and-open', reason: 'already-tried' },
    ]);
  });

  test("When the exclude hook reports a circuit open or a rate limit, then that gateway is excluded with the hook's reason", () => {
    const runtime: Record<string, ExclusionReason> = { open: 'circuit-open', busy: 'rate-limited' };
    const decision = select({ rules: [rule('open'), rule('busy'), rule('healthy')], exclude: (gatewayId) => runtime[gatewayId] });
    expect(decision.excluded).toEqual([
      { gatewayId: 'open', reason: 'circuit-open' },
      { gatewayId: 'busy', reason: 'rate-limited' },
    ]);
    expect(decision.candidates).toEqual([{ gatewayId: 'healthy', weight: 1 }]);
    expect(decision.chosen).toBe('healthy');
  });

  test('When a gateway is already excluded by its rule or by being tried, then the exclude hook is not asked about it', () => {
    const exclude = jest.fn((_gatewayId: string): ExclusionReason | undefined => undefined);
    select({ rules: [rule('us', { regions: ['US'] }), rule('off', { enabled: false }), rule('tried'), rule('fine')], tried: new Set(['tried']), exclude });
    expect(exclude.mock.calls).toEqual([['fine']]);
  });

  test('When the weightOf hook is given, then candidates carry its run-time weight instead of the rule weight', () => {
    const decision = select({ rules: [rule('a', { weight: 10 }), rule('b', { weight: 10 })], weightOf: (gateway) => (gateway.gatewayId === 'a' ? 2.5 : 7) });
    expect(decision.candidates).toEqual([
      { gatewayId: 'a', weight: 2.5 },
      { gatewayId: 'b', weight: 7 },
    ]);
  });

  test('When the weightOf hook weighs a gateway down to zero or below, then it is excluded for zero-weight', () => {
    const weights: Record<string, number> = { zero: 0, negative: -3, fine: 4 };
    const decision = select({ rules: [rule('zero'), rule('negative'), rule('fine')], weightOf: (gateway) => weights[gateway.gatewayId] ?? 1 });
    expect(decision.excluded).toEqual([
      { gatewayId: 'zero', reason: 'zero-weight' },
      { gatewayId: 'negative', reason: 'zero-weight' },
    ]);
    expect(decision.chosen).toBe('fine');
  });

  test('When the weightOf hook returns NaN or Infinity, then that gateway is excluded and the others are still chosen by their weights', () => {
    const weights: Record<string, number> = { first: 1, nan: Number.NaN, infinite: Number.POSITIVE_INFINITY, last: 1 };
    const input = { rules: [rule('first'), rule('nan'), rule('infinite'), rule('last')], weightOf: (gateway: GatewayRule) => weights[gateway.gatewayId] ?? 1 };
    const decision = select({ ...input, random: () => 0 });
    expect(decision.excluded).toEqual([
      { gatewayId: 'nan', reason: 'zero-weight' },
      { gatewayId: 'infinite', reason: 'zero-weight' },
    ]);
    expect(decision.chosen).toBe('first');
    expect(select({ ...input, random: () => 0.5 }).chosen).toBe('last');
  });

  test('When a gateway is excluded, then the weightOf hook is not asked about it', () => {
    const weightOf = jest.fn((gateway: GatewayRule) => gateway.weight);
    select({ rules: [rule('off', { enabled: false }), rule('tried'), rule('open'), rule('fine')], tried: new Set(['tried']), exclude: (id) => (id === 'open' ? 'circuit-open' : undefined), weightOf });
    expect(weightOf.mock.calls.map(([gateway]) => gateway.gatewayId)).toEqual(['fine']);
  });

  test('When several gateways are excluded, then each is reported once with its own reason, in rule order, and the rules version is kept', () => {
    const decision = select({
      payment: { ...euDeposit, amount: '100' },
      rules: [
        rule('us', { regions: ['US'] }),
        rule('payouts', { paymentTypes: ['withdrawal'] }),
        rule('usd', { currencies: ['USD'] }),
        rule('big', { amountBounds: { EUR: { min: '1000' } } }),
        rule('small', { amountBounds: { EUR: { max: '50' } } }),
        rule('off', { enabled: false }),
        rule('down', { available: false }),
        rule('tried'),
        rule('zero', { weight: 0 }),
        rule('open'),
        rule('busy'),
        rule('ok-1', { weight: 2 }),
        rule('ok-2', { regions: ['*'], weight: 5 }),
      ],
      rulesVersion: 'rules-42',
      tried: new Set(['tried']),
      exclude: (gatewayId) => (gatewayId === 'open' ? 'circuit-open' : gatewayId === 'busy' ? 'rate-limited' : undefined),
    });
    expect(decision.excluded).toEqual([
      { gatewayId: 'us', reason: 'region' },
      { gatewayId: 'payouts', reason: 'payment-type' },
      { gatewayId: 'usd', reason: 'currency' },
      { gatewayId: 'big', reason: 'below-min-amount' },
      { gatewayId: 'small', reason: 'above-max-amount' },
      { gatewayId: 'off', reason: 'disabled' },
      { gatewayId: 'down', reason: 'unavailable' },
      { gatewayId: 'tried', reason: 'already-tried' },
      { gatewayId: 'zero', reason: 'zero-weight' },
      { gatewayId: 'open', reason: 'circuit-open' },
      { gatewayId: 'busy', reason: 'rate-limited' },
    ]);
    expect(decision.candidates).toEqual([
      { gatewayId: 'ok-1', weight: 2 },
      { gatewayId: 'ok-2', weight: 5 },
    ]);
    expect(decision.rulesVersion).toBe('rules-42');
  });

  test('When no gateway is eligible, then chosen is null and every gateway is reported as excluded', () => {
    const decision = select({ rules: [rule('us', { regions: ['US'] }), rule('tried')], tried: new Set(['tried']), random: () => JUST_BELOW_ONE });
    expect(decision).toEqual({
      chosen: null,
      candidates: [],
      excluded: [
        { gatewayId: 'us', reason: 'region' },
        { gatewayId: 'tried', reason: 'already-tried' },
      ],
      rulesVersion: 'v-test',
    });
  });

  test('When there are no rules at all, then chosen is null', () => {
    expect(select({ rules: [] })).toEqual({ chosen: null, candidates: [], excluded: [], rulesVersion: 'v-test' });
  });
});

describe('selectGateway: weighted choice', () => {
  const threeToOne = [rule('heavy', { weight: 3 }), rule('light', { weight: 1 })];
  const chosenAt = (rules: GatewayRule[], random: number) => select({ rules, random: () => random }).chosen;

  test('When there is a single candidate, then it is chosen whatever the random value', () => {
    for (const random of [0, 0.5, JUST_BELOW_ONE]) expect(chosenAt([rule('only', { weight: 7 })], random)).toBe('only');
  });

  test('When the random value is 0, then the first candidate is chosen', () => {
    expect(chosenAt(threeToOne, 0)).toBe('heavy');
  });

  test('When the random value is just below 1, then the last candidate is chosen', () => {
    expect(chosenAt(threeToOne, JUST_BELOW_ONE)).toBe('light');
    // Large totals, where random * total rounds up to the total itself, still land on the last candidate.
    const heavyWeights = [rule('a', { weight: 1000 }), rule('b', { weight: 1000 }), rule('c', { weight: 1000 })];
    expect(chosenAt(heavyWeights, JUST_BELOW_ONE)).toBe('c');
  });

  test('When the random value sits exactly on a cumulative edge, then the next candidate is chosen (intervals are [start, end))', () => {
    // 3:1 → heavy owns [0, 0.75), light owns [0.75, 1).
    expect(chosenAt(threeToOne, 0.75 - 2 ** -53)).toBe('heavy');
    expect(chosenAt(threeToOne, 0.75)).toBe('light');

    // 1:2:1 → a [0, 0.25), b [0.25, 0.75), c [0.75, 1).
    const oneTwoOne = [rule('a', { weight: 1 }), rule('b', { weight: 2 }), rule('c', { weight: 1 })];
    expect(chosenAt(oneTwoOne, 0.25 - 2 ** -54)).toBe('a');
    expect(chosenAt(oneTwoOne, 0.25)).toBe('b');
    expect(chosenAt(oneTwoOne, 0.75 - 2 ** -53)).toBe('b');
    expect(chosenAt(oneTwoOne, 0.75)).toBe('c');
  });

  test('When the same input is given twice, then the decision is the same', () => {
    for (const random of [0, 0.1, 0.5, 0.74, 0.75, 0.99]) {
      expect(select({ rules: threeToOne, random: () => random })).toEqual(select({ rules: threeToOne, random: () => random }));
    }
  });

  test('When excluded gateways sit between candidates, then they take no share of the random range', () => {
    const rules = [rule('heavy', { weight: 3 }), rule('off', { weight: 100, enabled: false }), rule('light', { weight: 1 })];
    expect(chosenAt(rules, 0.74)).toBe('heavy');
    expect(chosenAt(rules, 0.75)).toBe('light');
  });

  function split(rules: GatewayRule[], draws: number, extra: Partial<SelectionInput> = {}): Record<string, number> {
    const counts: Record<string, number> = {};
    for (let i = 0; i < draws; i++) {
      const chosen = select({ rules, random: () => i / draws, ...extra }).chosen ?? 'none';
      counts[chosen] = (counts[chosen] ?? 0) + 1;
    }
    return counts;
  }

  test('When 400 evenly spread random values pick between gateways weighted 3:1, then the split is exactly 300/100', () => {
    expect(split(threeToOne, 400)).toEqual({ heavy: 300, light: 100 });
  });

  test('When 400 evenly spread random values pick among gateways weighted 1:2:1, then the split is exactly 100/200/100', () => {
    expect(split([rule('a', { weight: 1 }), rule('b', { weight: 2 }), rule('c', { weight: 1 })], 400)).toEqual({ a: 100, b: 200, c: 100 });
  });

  test('When run-time weights replace rule weights, then the split follows the run-time weights', () => {
    const rules = [rule('a', { weight: 1 }), rule('b', { weight: 1 })];
    expect(split(rules, 1000, { weightOf: (gateway) => (gateway.gatewayId === 'a' ? 1 : 4) })).toEqual({ a: 200, b: 800 });
  });
});

describe('servesPayment', () => {
  test('When a gateway is only disabled or unavailable, then it still serves the payment (its rules match)', () => {
    expect(servesPayment(euDeposit, rule('a'))).toBe(true);
    expect(servesPayment(euDeposit, rule('off', { enabled: false }))).toBe(true);
    expect(servesPayment(euDeposit, rule('down', { available: false }))).toBe(true);
    expect(servesPayment(euDeposit, rule('zero', { weight: 0 }))).toBe(true);
  });

  test('When region, type, currency or amount limits do not match, then the gateway does not serve the payment', () => {
    expect(servesPayment(euDeposit, rule('us', { regions: ['US'] }))).toBe(false);
    expect(servesPayment(euDeposit, rule('payouts', { paymentTypes: ['withdrawal'] }))).toBe(false);
    expect(servesPayment(euDeposit, rule('usd', { currencies: ['USD'] }))).toBe(false);
    expect(servesPayment(euDeposit, rule('big', { amountBounds: { EUR: { min: '10001' } } }))).toBe(false);
    expect(servesPayment(euDeposit, rule('small', { amountBounds: { EUR: { max: '9999' } } }))).toBe(false);
    expect(servesPayment(euDeposit, rule('anywhere', { regions: ['*'] }))).toBe(true);
  });
});
