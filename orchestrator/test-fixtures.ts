import { gatewayRule, type GatewayRule } from '../topics/schemas';

/**
 * Fixtures shared by the orchestrator's unit tests: pure data, no I/O.
 */

/** A bound per currency that lets any valid amount through, for rules whose tests are not about amounts. */
export const anyAmountBounds = (currencies: readonly string[]): NonNullable<GatewayRule['amountBounds']> =>
  Object.fromEntries(currencies.map((currency) => [currency, { min: '1', max: '999999999999999999' }]));

/**
 * A builder of valid rules (parsed by the contract's own schema, so its
 * defaults apply) serving EUR in the EU, with a test file's own `defaults`
 * on top; each call's `overrides` go over both. Every currency it serves gets
 * a bound letting any amount through (selection routes no currency without
 * one), unless `amountBounds` is given.
 */
export const ruleBuilder =
  (defaults: Partial<GatewayRule> = {}) =>
  (gatewayId: string, overrides: Partial<GatewayRule> = {}): GatewayRule => {
    const currencies = overrides.currencies ?? defaults.currencies ?? ['EUR'];
    return gatewayRule.parse({
      gatewayId,
      enabled: true,
      regions: ['EU'],
      paymentTypes: ['deposit', 'withdrawal'],
      currencies,
      amountBounds: anyAmountBounds(currencies),
      weight: 1,
      timeoutMs: 5_000,
      available: true,
      ...defaults,
      ...overrides,
    });
  };

/** A valid rule serving EUR in the EU. */
export const validRule = ruleBuilder();
