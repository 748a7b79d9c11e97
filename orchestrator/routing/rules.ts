import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { gatewayRule, type GatewayRule, type RuleEvent } from '../../topics/schemas';
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

/** Why a rule event changed nothing: it does not move its gateway's version forward (a replay), or it was moved to another key. */
export type RuleRefusal = { refused: 'stale-version'; held: number } | { refused: 'wrong-key'; names: string };

/**
 * Rules kept in memory, replaced one gateway at a time as rule events arrive
 * from the compacted rule topic. Each gateway's version only moves forward:
 * an event is applied only when its version is above the one held for its
 * gateway (removals included), so a replayed older event changes nothing.
 * The book's version is the topic offset of the last applied event: the same
 * on every instance that has read as far.
 */
export function createRuleBook(initial: readonly GatewayRule[] = []) {
  const byId = new Map(initial.map((rule) => [rule.gatewayId, rule]));
  /** The highest version applied per gateway, kept after a removal so an older rule cannot bring it back. */
  const versions = new Map<string, number>();
  let list: readonly GatewayRule[] = [...byId.values()];
  let version = initial.length > 0 ? 'static' : 'none';
  return {
    rules: () => list,
    ruleOf: (gatewayId: string) => byId.get(gatewayId),
    version: () => version,
    versionOf: (gatewayId: string): number => versions.get(gatewayId) ?? 0,
    /** Applies one rule event (a change or a removal) read at `offset`, unless it would not move its gateway forward. */
    apply(gatewayId: string, event: RuleEvent, offset: string): RuleRefusal | undefined {
      const names = event.type === 'rule.changed' ? event.rule.gatewayId : event.gatewayId;
      if (names !== gatewayId) return { refused: 'wrong-key', names };
      const held = versions.get(gatewayId) ?? 0;
      if (event.version <= held) return { refused: 'stale-version', held };
      versions.set(gatewayId, event.version);
      if (event.type === 'rule.removed') byId.delete(gatewayId);
      else byId.set(gatewayId, event.rule);
      list = [...byId.values()].sort((a, b) => a.gatewayId.localeCompare(b.gatewayId));
      version = `rules@${offset}`;
      return undefined;
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
