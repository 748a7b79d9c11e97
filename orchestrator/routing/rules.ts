import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { gatewayRule, type GatewayRule } from '../../topics/schemas';

/** The rules in force, and a version that attempts record so a decision can be explained later. */
export interface RuleBook {
  rules(): readonly GatewayRule[];
  version(): string;
  timeoutMsOf(gatewayId: string): number;
}

/** Fallback when a gateway's rule vanished between dispatch and failover. */
const DEFAULT_TIMEOUT_MS = 5_000;

export function staticRuleBook(rules: readonly GatewayRule[], version = 'static-1'): RuleBook {
  const byId = new Map(rules.map((rule) => [rule.gatewayId, rule]));
  return {
    rules: () => rules,
    version: () => version,
    timeoutMsOf: (gatewayId) => byId.get(gatewayId)?.timeoutMs ?? DEFAULT_TIMEOUT_MS,
  };
}

/** Reads and validates a JSON file of gateway rules; a bad file stops start-up naming the entry. */
export function readRulesFile(path: string): GatewayRule[] {
  const parsed = z.array(gatewayRule).safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`rules file ${path}: ${issue?.path.join('.')}: ${issue?.message}`);
  }
  return parsed.data;
}
