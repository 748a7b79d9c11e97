import type { RuleAuditAction } from '../../topics/schemas';
import type { GatewayRule } from '../../topics/schemas';
import { amountBoundIssues } from './validate';

/** A gateway's rule as the back office holds it: the rule, its version, and who set it when. */
export interface RuleEntry {
  rule: GatewayRule;
  version: number;
  changedBy: string;
  changedAt: string;
}

/** What an operator sends for a gateway: the rule without its id, which the path names. */
export type RuleBody = Omit<GatewayRule, 'gatewayId'>;

/** A change asked for, with the version it was based on (from If-Match) when one was given. */
export type RuleCommand =
  | { kind: 'put'; gatewayId: string; body: RuleBody; ifMatch?: number; ifNoneMatch: boolean }
  | { kind: 'delete'; gatewayId: string; ifMatch?: number }
  | { kind: 'set-availability'; gatewayId: string; available: boolean; reason?: string; ifMatch?: number }
  /** Publish the audited rule (null: the audited removal) again, at a new version: the topic lost or rolled it back. */
  | { kind: 'republish'; gatewayId: string; audited: GatewayRule | null; reason: string };

/** What the back office knows of one gateway when it decides. */
export interface RuleState {
  entry: RuleEntry | undefined;
  /** The highest version this gateway ever had, removed incarnations included, so versions never repeat. */
  lastVersion: number;
}

export interface Rejection {
  outcome: 'rejected';
  status: 404 | 409 | 412 | 428;
  code: 'not_found' | 'invalid_rule' | 'precondition_failed' | 'precondition_required';
  message: string;
  field?: string;
}

export type Decision =
  | {
      outcome: 'change';
      action: RuleAuditAction;
      before: GatewayRule | null;
      /** Null for a removal (a `rule.removed` event on the rule topic). */
      after: GatewayRule | null;
      version: number;
      changedFields: string[];
      reason?: string;
    }
  | { outcome: 'unchanged'; entry: RuleEntry }
  | Rejection;

const notFound = (gatewayId: string): Rejection => ({ outcome: 'rejected', status: 404, code: 'not_found', message: `no rule for gateway ${gatewayId}`, field: 'id' });
const stale = (gatewayId: string, current: number | undefined): Rejection => ({
  outcome: 'rejected',
  status: 412,
  code: 'precondition_failed',
  message:
    current === undefined
      ? `gateway ${gatewayId} has no rule, so If-Match cannot match; create it without If-Match`
      : `gateway ${gatewayId} is at version ${current}; read it again and retry with If-Match: "${current}"`,
  field: 'If-Match',
});
const required = (gatewayId: string, current: number): Rejection => ({
  outcome: 'rejected',
  status: 428,
  code: 'precondition_required',
  message: `changing gateway ${gatewayId} needs If-Match with the version it is based on (now "${current}")`,
  field: 'If-Match',
});

/**
 * A rule this change would publish that the back office would refuse as a body (a served currency without an
 * amount bound: a rule from before bounds per currency, or one published by hand): it is not published again as
 * it is, whichever path asks. Only a whole rule sent with PUT can fix it.
 */
const unpublishable = (gatewayId: string, after: GatewayRule): Rejection | undefined => {
  const [issue, ...others] = amountBoundIssues(after);
  if (!issue) return undefined;
  const more = others.length === 0 ? '' : ` (and ${others.length} more)`;
  return {
    outcome: 'rejected',
    status: 409,
    code: 'invalid_rule',
    message: `the rule of gateway ${gatewayId} cannot be published again as it is: ${issue.path.join('.')}: ${issue.message}${more}. Send the whole rule with PUT /v1/gateways/${gatewayId}`,
    field: issue.path.join('.'),
  };
};

/** Top-level rule fields whose value differs (JSON equality). */
export function changedFields(before: GatewayRule | null, after: GatewayRule | null): string[] {
  const keys = new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})]);
  const valueOf = (rule: GatewayRule | null, key: string) => JSON.stringify((rule as Record<string, unknown> | null)?.[key]);
  return [...keys].filter((key) => valueOf(before, key) !== valueOf(after, key)).sort();
}

/**
 * Decides a rule command against the current state: a pure function, so the
 * precondition rules (412/428/404) are tested without Kafka. Time, the actor
 * and ids are added by the caller.
 */
export function decide(command: RuleCommand, state: RuleState): Decision {
  const { entry } = state;
  const nextVersion = Math.max(state.lastVersion, entry?.version ?? 0) + 1;
  // Every path that publishes a rule holds it to the bounds check (a PUT body was already checked at the edge),
  // except taking a gateway out of routing: an operator marking a gateway unavailable in an incident is never refused.
  const change = (action: RuleAuditAction, after: GatewayRule | null, reason?: string): Decision => {
    const refused = after === null || action === 'marked-unavailable' ? undefined : unpublishable(command.gatewayId, after);
    if (refused) return refused;
    const before = entry?.rule ?? null;
    return { outcome: 'change', action, before, after, version: nextVersion, changedFields: changedFields(before, after), ...(reason === undefined ? {} : { reason }) };
  };

  switch (command.kind) {
    case 'put': {
      const after: GatewayRule = { gatewayId: command.gatewayId, ...command.body };
      if (!entry) {
        if (command.ifMatch !== undefined) return stale(command.gatewayId, undefined);
        return change('created', after);
      }
      if (command.ifNoneMatch) {
        return { outcome: 'rejected', status: 412, code: 'precondition_failed', message: `gateway ${command.gatewayId} already has a rule (If-None-Match: *)`, field: 'If-None-Match' };
      }
      if (command.ifMatch === undefined) return required(command.gatewayId, entry.version);
      if (command.ifMatch !== entry.version) return stale(command.gatewayId, entry.version);
      return change('updated', after);
    }
    case 'delete': {
      if (!entry) return notFound(command.gatewayId);
      if (command.ifMatch === undefined) return required(command.gatewayId, entry.version);
      if (command.ifMatch !== entry.version) return stale(command.gatewayId, entry.version);
      return change('deleted', null);
    }
    case 'set-availability': {
      if (!entry) return notFound(command.gatewayId);
      // If-Match is optional here: the change touches only availability, read and written under the per-gateway lock.
      if (command.ifMatch !== undefined && command.ifMatch !== entry.version) return stale(command.gatewayId, entry.version);
      const { unavailableReason: _previousReason, ...rest } = entry.rule;
      const after: GatewayRule = command.available ? { ...rest, available: true } : { ...rest, available: false, unavailableReason: command.reason };
      if (changedFields(entry.rule, after).length === 0) return { outcome: 'unchanged', entry };
      return change(command.available ? 'marked-available' : 'marked-unavailable', after, command.available ? undefined : command.reason);
    }
    case 'republish':
      // Above every version this gateway had, on the topic or in the trail, so every reader applies it.
      return change('republished', command.audited, command.reason);
  }
}

export interface RuleWarning {
  code: 'region_without_available_gateway';
  region: string;
  message: string;
}

/** A gateway that can take traffic by its rule (the breaker is not considered: it recovers by itself). */
const routable = (rule: GatewayRule) => rule.enabled && rule.available && rule.weight > 0;

/**
 * Regions (named by any rule before or after the change) that no enabled,
 * available gateway with a weight serves after it. Allowed, but said.
 */
export function regionWarnings(before: readonly GatewayRule[], after: readonly GatewayRule[]): RuleWarning[] {
  const regions = new Set([...before, ...after].flatMap((rule) => rule.regions).filter((region) => region !== '*'));
  const serving = after.filter(routable);
  if (serving.some((rule) => rule.regions.includes('*'))) return [];
  return [...regions]
    .filter((region) => !serving.some((rule) => rule.regions.includes(region)))
    .sort()
    .map((region) => ({ code: 'region_without_available_gateway', region, message: `no enabled, available gateway with a weight serves region ${region}` }));
}

/** The rule set with one gateway's rule replaced (or removed when `after` is null). */
export function withRule(rules: readonly GatewayRule[], gatewayId: string, after: GatewayRule | null): GatewayRule[] {
  const others = rules.filter((rule) => rule.gatewayId !== gatewayId);
  return after ? [...others, after] : others;
}
