import type { RuleAudited } from '../../topics/schemas';
import { ruleEventGateway, sumOutcomeCounts, type GatewayHealthChanged, type GatewayRule, type GatewayStatsReported, type RuleEvent } from '../../topics/schemas';
import { waitInSet, type Waiter } from '../../runtime/waiters';
import type { RuleEntry } from './decide';

/**
 * The back office's view of the rule topic, rebuilt from it at start-up and
 * kept current by following it, so its own writes and other writers' land
 * here the same way. Each gateway's key always hashes to one partition, so the
 * offset of the last event applied for a gateway tells whether a write of
 * ours has been read back.
 */
/** What one rule event did to the view: applied, or refused because it does not move its gateway forward or names another key. */
export type ViewApplied = 'applied' | 'stale-version' | 'wrong-key';

export function createRuleView() {
  const entries = new Map<string, RuleEntry>();
  const lastVersions = new Map<string, number>();
  /** The highest version read from the topic per gateway (removals included): an event at or below it is a replay. */
  const appliedVersions = new Map<string, number>();
  const appliedOffsets = new Map<string, bigint>();
  const waiters = new Set<Waiter<{ gatewayId: string; offset: bigint }>>();

  const noteVersion = (gatewayId: string, version: number) => {
    lastVersions.set(gatewayId, Math.max(version, lastVersions.get(gatewayId) ?? 0));
  };

  return {
    get: (gatewayId: string): RuleEntry | undefined => entries.get(gatewayId),
    list: (): RuleEntry[] => [...entries.values()].sort((a, b) => a.rule.gatewayId.localeCompare(b.rule.gatewayId)),
    rules: (): GatewayRule[] => [...entries.values()].map((entry) => entry.rule),
    lastVersionOf: (gatewayId: string): number => lastVersions.get(gatewayId) ?? 0,
    /** Versions seen elsewhere (the audit trail, our own removals), so a re-created gateway never reuses one. */
    noteVersion,

    /**
     * Applies one rule event (a change or a removal) read at `offset`, only
     * when its version is above the one read last for its gateway: an older
     * event replayed on the topic, or two writers that based a change on the
     * same version (several back-office instances), change nothing. Either
     * way the offset counts as read, so a writer waiting for it wakes.
     */
    apply(gatewayId: string, event: RuleEvent, offset: string): ViewApplied {
      let outcome: ViewApplied = 'applied';
      if (ruleEventGateway(event) !== gatewayId) outcome = 'wrong-key';
      else if (event.version <= (appliedVersions.get(gatewayId) ?? 0)) outcome = 'stale-version';
      else {
        appliedVersions.set(gatewayId, event.version);
        noteVersion(gatewayId, event.version);
        if (event.type === 'rule.removed') entries.delete(gatewayId);
        else entries.set(gatewayId, { rule: event.rule, version: event.version, changedBy: event.changedBy, changedAt: event.occurredAt });
      }
      const at = BigInt(offset);
      appliedOffsets.set(gatewayId, at);
      for (const waiter of waiters) if (waiter.gatewayId === gatewayId && at >= waiter.offset) waiter.wake();
      return outcome;
    },

    /** Resolves true once the event at `offset` for this gateway has been applied; false after `timeoutMs`. */
    untilApplied(gatewayId: string, offset: string, timeoutMs: number): Promise<boolean> {
      const target = BigInt(offset);
      if ((appliedOffsets.get(gatewayId) ?? -1n) >= target) return Promise.resolve(true);
      return waitInSet(waiters, { gatewayId, offset: target }, timeoutMs);
    },
  };
}
export type RuleView = ReturnType<typeof createRuleView>;

/** Breaker states as the orchestrators report them on the health topic (the latest per gateway). */
export function createHealthView() {
  const byGateway = new Map<string, GatewayHealthChanged>();
  return {
    apply(gatewayId: string, event: GatewayHealthChanged | null): void {
      if (event === null) byGateway.delete(gatewayId);
      else byGateway.set(gatewayId, event);
    },
    of: (gatewayId: string): GatewayHealthChanged | undefined => byGateway.get(gatewayId),
  };
}
export type HealthView = ReturnType<typeof createHealthView>;

export interface RecentSuccess {
  /** Successes over all attempt outcomes (declines, technical failures and timeouts count against it). */
  rate: number;
  attempts: number;
  successes: number;
  declines: number;
  failures: number;
  timeouts: number;
  windowSeconds: number;
}

/**
 * Recent attempt outcomes per gateway, summed over the latest report of every
 * orchestrator instance. A report older than `staleAfterMs` comes from an
 * instance that has stopped, and no longer counts.
 */
export function createSuccessRates(staleAfterMs: number) {
  const byInstance = new Map<string, GatewayStatsReported>();
  const liveReports = (nowMs: number) => [...byInstance.values()].filter((report) => nowMs - Date.parse(report.occurredAt) <= staleAfterMs);
  return {
    apply(instanceId: string, report: GatewayStatsReported | null): void {
      if (report === null) byInstance.delete(instanceId);
      else byInstance.set(instanceId, report);
    },
    /** Undefined while no live instance has seen an outcome of this gateway. */
    of(gatewayId: string, nowMs: number): RecentSuccess | undefined {
      const reports = liveReports(nowMs);
      const [counts] = sumOutcomeCounts(reports.flatMap((report) => report.gateways.filter((entry) => entry.gatewayId === gatewayId)));
      if (!counts) return undefined;
      const attempts = counts.successes + counts.declines + counts.failures + counts.timeouts;
      if (attempts === 0) return undefined;
      const { gatewayId: _gatewayId, ...outcomes } = counts;
      return {
        rate: Math.round((counts.successes / attempts) * 1000) / 1000,
        attempts,
        ...outcomes,
        windowSeconds: Math.max(...reports.map((report) => report.windowSeconds)),
      };
    },
  };
}
export type SuccessRates = ReturnType<typeof createSuccessRates>;

/** Every audit event per gateway, in topic order; a redelivered event is kept once. */
export function createAuditTrail() {
  const byGateway = new Map<string, RuleAudited[]>();
  const seen = new Set<string>();
  return {
    add(event: RuleAudited): void {
      if (seen.has(event.eventId)) return;
      seen.add(event.eventId);
      byGateway.set(event.gatewayId, [...(byGateway.get(event.gatewayId) ?? []), event]);
    },
    of: (gatewayId: string): readonly RuleAudited[] => byGateway.get(gatewayId) ?? [],
    /** Every gateway with a trail, and its entries. */
    gateways: (): Iterable<[string, readonly RuleAudited[]]> => byGateway.entries(),
  };
}
export type AuditTrail = ReturnType<typeof createAuditTrail>;
