import type { GatewayRule } from '../../topics/schemas';

/** One reason a rule body is refused, with the field (path) it names. */
export interface RuleIssue {
  path: Array<string | number>;
  message: string;
}

/**
 * What the rule contract's schema cannot say on its own, checked before the
 * back office publishes a rule: every currency the rule serves has an
 * amount bound with a minimum and a maximum (minor units mean very different
 * sums in different currencies, so one cap for all cannot be right), a bound
 * names only currencies the rule serves, and a minimum is not above its
 * maximum. Pure, so it is tested without HTTP.
 */
export function amountBoundIssues(rule: Pick<GatewayRule, 'currencies' | 'amountBounds'>): RuleIssue[] {
  const issues: RuleIssue[] = [];
  const bounds = rule.amountBounds ?? {};
  for (const currency of rule.currencies) {
    const bound = bounds[currency];
    if (bound === undefined) {
      issues.push({ path: ['amountBounds', currency], message: `the rule serves ${currency} but has no amount bound for it: give amountBounds.${currency} {"min", "max"} in ${currency} minor units` });
      continue;
    }
    if (bound.min === undefined) issues.push({ path: ['amountBounds', currency, 'min'], message: `required: the smallest ${currency} amount, in minor units` });
    if (bound.max === undefined) issues.push({ path: ['amountBounds', currency, 'max'], message: `required: the largest ${currency} amount, in minor units` });
    if (bound.min !== undefined && bound.max !== undefined && BigInt(bound.min) > BigInt(bound.max)) {
      issues.push({ path: ['amountBounds', currency, 'max'], message: 'must not be below min' });
    }
  }
  for (const currency of Object.keys(bounds).sort()) {
    if (!rule.currencies.includes(currency)) issues.push({ path: ['amountBounds', currency], message: `a bound for ${currency}, which the rule does not serve (currencies)` });
  }
  return issues;
}
