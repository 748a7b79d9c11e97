import { gatewayRule, type GatewayRule } from '../topics/schemas';

/**
 * Fixtures shared by the orchestrator's unit tests: pure data, no I/O.
 */

/**
 * A builder of valid rules (parsed by the contract's own schema, so its
 * defaults apply) serving EUR in the EU, with a test file's own `defaults`
 * on top; each call's `overrides` go over both.
 */
export const ruleBuilder =
  (defaults: Partial<GatewayRule> = {}) =>
  (gatewayId: string, overrides: Partial<GatewayRule> = {}): GatewayRule =>
    gatewayRule.parse({
      gatewayId,
      enabled: true,
      regions: ['EU'],
      paymentTypes: ['deposit', 'withdrawal'],
      currencies: ['EUR'],
      weight: 1,
      timeoutMs: 5_000,
      available: true,
      ...defaults,
      ...overrides,
    });

/** A valid rule serving EUR in the EU. */
export const validRule = ruleBuilder();
