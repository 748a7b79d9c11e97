import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { gatewayRule, type GatewayRule, type RuleChanged } from '../../topics/schemas';
// The back office's own check, so the seed file is held to what an operator could publish.
import { amountBoundIssues } from '../../backoffice/rules/validate';

/** The rules in force, and a version that attempts record so a decision can be explained later. */
export interface RuleBook {
  rules(): readonly GatewayRule[];
  ruleOf(gatewayId: string): GatewayRule | undefined;
  version(): string;
}

/** Fallback when a gateway's rule vanished between dispatch and its timeout. */
export const DEFAULT_TIMEOUT_MS = 5_000;

/**
 * Rules kept in memory, replaced one gateway at a time as rule events arrive
 * from the compacted rule topic. The version is the topic offset of the last
 * applied event: the same on every instance that has read as far.
 */
export function createRuleBook(initial: readonly GatewayRule[] = []) {
  const byId = new Map(initial.map((rule) => [rule.gatewayId, rule]));
  let list: readonly GatewayRule[] = [...byId.values()];
  let version = initial.length > 0 ? 'static' : 'none';
  return {
    rules: () => list,
    ruleOf: (gatewayId: string) => byId.get(gatewayId),
    version: () => version,
    /** Applies one rule event (or a removal) read at `offset`. */
    apply(gatewayId: string, event: RuleChanged | null, offset: string): void {
      if (event === null) byId.delete(gatewayId);
      else byId.set(gatewayId, event.rule);
      list = [...byId.values()].sort((a, b) => a.gatewayId.localeCompare(b.gatewayId));
      version = `rules@${offset}`;
    },
  };
}
export type MutableRuleBook = ReturnType<typeof createRuleBook>;

/**
 * Reads and validates a JSON file of gateway rules (the seed rules, published without the back office); a bad
 * file stops start-up naming the entry. It is held to what the back office would accept of amount bounds, so
 * seeding cannot publish a rule that serves a currency without a bound.
 */
export function readRulesFile(path: string): GatewayRule[] {
  const parsed = z
    .array(gatewayRule)
    .superRefine((rules, ctx) => {
      rules.forEach((rule, index) => {
        for (const issue of amountBoundIssues(rule)) ctx.addIssue({ code: 'custom', path: [index, ...issue.path], message: issue.message });
      });
    })
    .safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`rules file ${path}: ${issue?.path.join('.')}: ${issue?.message}`);
  }
  return parsed.data;
}
