import { createHash } from 'node:crypto';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../../runtime/logger';
import { startPoller } from '../../runtime/poller';
import { ruleEventGateway, type GatewayRule, type RuleAudited, type RuleEvent } from '../../topics/schemas';

/**
 * What the rule topic holds for one key: its last message, which is what
 * compaction keeps and so what a reader that starts after compaction gets.
 * A message no reader applies (forged, a bare tombstone, under another
 * gateway's key) leaves that reader nothing for the key.
 */
export type TopicHeld =
  | { state: 'rule'; version: number; bodyHash: string; offset: string }
  | { state: 'removed'; version: number; offset: string }
  | { state: 'none'; refused: string; offset: string };

const DIVERGENCE_KINDS = ['missing', 'rolled-back', 'body-differs'] as const;

/** How the rule topic differs from the audit trail for a gateway. */
/**
 * - missing: the audit trail has a rule; the topic has none, or a removal nobody audited
 * - rolled-back: the topic's version is below the audited one (a replayed older event, or a lost newer one)
 * - body-differs: same version, another body
 */
export type DivergenceKind = (typeof DIVERGENCE_KINDS)[number];

export interface Divergence {
  gatewayId: string;
  kind: DivergenceKind;
  audited: { version: number; action: RuleAudited['action']; bodyHash: string | null; actor: string; at: string };
  topic: { state: TopicHeld['state']; version: number | null; bodyHash: string | null; offset: string | null; refused?: string };
  /** When this divergence was first found (it stays the same while it lasts). */
  since: string;
}

/** A rule's hash, independent of key order: the audit entry and the rule event carry the same rule. */
export function ruleHash(rule: GatewayRule | null): string | null {
  if (rule === null) return null;
  const canonical = (value: unknown): unknown =>
    value !== null && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(
          Object.entries(value)
            .sort(([a], [b]) => a.localeCompare(b))
            .map(([key, inner]) => [key, canonical(inner)]),
        )
      : Array.isArray(value)
        ? value.map(canonical)
        : value;
  return createHash('sha256').update(JSON.stringify(canonical(rule))).digest('hex');
}

/** The last message per key on the rule topic, fed by the back office's rule follower. */
export function createTopicTail() {
  const byKey = new Map<string, TopicHeld>();
  return {
    /** A signed, readable rule event at `offset` (applied or not by the view: compaction keeps it either way). */
    event(key: string, event: RuleEvent, offset: string): void {
      if (ruleEventGateway(event) !== key) byKey.set(key, { state: 'none', refused: 'wrong-key', offset });
      else if (event.type === 'rule.removed') byKey.set(key, { state: 'removed', version: event.version, offset });
      else byKey.set(key, { state: 'rule', version: event.version, bodyHash: ruleHash(event.rule) ?? '', offset });
    },
    /** A message at `offset` that no reader applies. */
    refused(key: string, reason: string, offset: string): void {
      byKey.set(key, { state: 'none', refused: reason, offset });
    },
    of: (key: string): TopicHeld | undefined => byKey.get(key),
    keys: (): Iterable<string> => byKey.keys(),
  };
}
export type TopicTail = ReturnType<typeof createTopicTail>;

/** The change that counts for a gateway: the highest version audited (the later entry on a tie). */
export function latestAudited(entries: readonly RuleAudited[]): RuleAudited | undefined {
  return entries.reduce<RuleAudited | undefined>((latest, entry) => (latest === undefined || entry.version >= latest.version ? entry : latest), undefined);
}

/**
 * Compares a gateway's latest audited change with what the topic holds: a
 * pure function. A topic ahead of the trail is not a divergence (the audit
 * entry leaves the outbox after the rule event; the seed is not audited).
 */
export function divergenceOf(audited: RuleAudited, held: TopicHeld | undefined): DivergenceKind | undefined {
  const auditedHash = ruleHash(audited.after);
  if (audited.after === null) {
    // Audited as removed: only a rule below the removal (an older one brought back) routes differently.
    return held?.state === 'rule' && held.version < audited.version ? 'rolled-back' : undefined;
  }
  if (held === undefined || held.state === 'none') return 'missing';
  if (held.version < audited.version) return 'rolled-back';
  if (held.state === 'removed') return held.version === audited.version ? 'body-differs' : 'missing';
  if (held.version === audited.version && held.bodyHash !== auditedHash) return 'body-differs';
  return undefined;
}

export interface RulesReconcilerDeps {
  /** Every gateway with an audit trail, and its entries. */
  audited: () => Iterable<[string, readonly RuleAudited[]]>;
  tail: TopicTail;
  /** Waits until the rule follower has read everything on the topic now; false when it did not in time. */
  catchUp: () => Promise<boolean>;
  registry: Registry;
  logger: Logger;
  clock: () => Date;
}

/**
 * The back office's check that the rule topic still carries what the audit
 * trail says was decided (issue 12): per gateway, the latest audited change
 * against the topic's last message for that key. Run at start, then every
 * `intervalMs`, and on demand before a re-publication.
 *
 * Order matters: the trail is read first, then the rule follower catches up
 * with the topic's end at that moment. A rule event is acknowledged before its
 * audit entry is sent (the outbox sends them in order), so every audited
 * change in the snapshot is already below that end: a write in flight never
 * shows as a divergence.
 */
export function createRulesReconciler(deps: RulesReconcilerDeps) {
  const { tail, logger, clock } = deps;
  const diverged = new Gauge({
    name: 'backoffice_rules_diverged',
    help: 'Whether a gateway\'s rule on the rule topic differs from the audit trail (1 while it lasts, else 0; every gateway on the topic or in the trail), by kind: missing, rolled-back, body-differs',
    labelNames: ['gateway', 'kind'],
    registers: [deps.registry],
  });
  const runs = new Counter({
    name: 'backoffice_rules_reconciliations_total',
    help: 'Comparisons of the rule topic with the audit trail, by result: converged, diverged, not-caught-up',
    labelNames: ['result'],
    registers: [deps.registry],
  });
  let current = new Map<string, Divergence>();

  const compare = (snapshot: Array<[string, RuleAudited]>): Map<string, Divergence> => {
    const found = new Map<string, Divergence>();
    for (const [gatewayId, audited] of snapshot) {
      const held = tail.of(gatewayId);
      const kind = divergenceOf(audited, held);
      if (!kind) continue;
      const previous = current.get(gatewayId);
      found.set(gatewayId, {
        gatewayId,
        kind,
        audited: { version: audited.version, action: audited.action, bodyHash: ruleHash(audited.after), actor: audited.actor, at: audited.occurredAt },
        topic: {
          state: held?.state ?? 'none',
          version: held && held.state !== 'none' ? held.version : null,
          bodyHash: held?.state === 'rule' ? held.bodyHash : null,
          offset: held?.offset ?? null,
          ...(held?.state === 'none' ? { refused: held.refused } : {}),
        },
        since: previous?.kind === kind ? previous.since : clock().toISOString(),
      });
    }
    return found;
  };

  /** One comparison; keeps the previous findings when the follower could not catch up. */
  const run = async (): Promise<Divergence[]> => {
    // The trail first, then the topic (see above): entries audited after this snapshot wait for the next run.
    const snapshot = [...deps.audited()].flatMap(([gatewayId, entries]): Array<[string, RuleAudited]> => {
      const latest = latestAudited(entries);
      return latest ? [[gatewayId, latest]] : [];
    });
    if (!(await deps.catchUp())) {
      runs.inc({ result: 'not-caught-up' });
      logger.warn({ auditedGateways: snapshot.length }, 'rule reconciliation skipped: the rule follower did not catch up with the topic in time');
      return [...current.values()];
    }
    const found = compare(snapshot);
    for (const divergence of found.values()) {
      if (current.get(divergence.gatewayId)?.kind === divergence.kind) continue;
      logger.critical(
        {
          gatewayId: divergence.gatewayId,
          kind: divergence.kind,
          auditedVersion: divergence.audited.version,
          topicVersion: divergence.topic.version,
          topicState: divergence.topic.state,
          ...(divergence.topic.refused ? { refused: divergence.topic.refused } : {}),
        },
        'rule topic diverged from the audit trail: re-publish the audited rule (POST /v1/gateways/:id/republish)',
      );
    }
    for (const [gatewayId, gone] of current) {
      if (!found.has(gatewayId)) logger.info({ gatewayId, kind: gone.kind }, 'rule topic agrees with the audit trail again');
    }
    current = found;
    // A series per gateway and kind, 0 while it agrees: the alert's input is there before anything diverges.
    diverged.reset();
    for (const gateway of new Set([...tail.keys(), ...snapshot.map(([gatewayId]) => gatewayId)])) {
      for (const kind of DIVERGENCE_KINDS) diverged.set({ gateway, kind }, found.get(gateway)?.kind === kind ? 1 : 0);
    }
    runs.inc({ result: found.size > 0 ? 'diverged' : 'converged' });
    return [...found.values()];
  };

  return {
    run,
    /** Runs a comparison now and tells this gateway's divergence, if any. */
    async check(gatewayId: string): Promise<Divergence | undefined> {
      await run();
      return current.get(gatewayId);
    },
    list: (): Divergence[] => [...current.values()].sort((a, b) => a.gatewayId.localeCompare(b.gatewayId)),
    of: (gatewayId: string): Divergence | undefined => current.get(gatewayId),
    /** Compares at once, then every `intervalMs`; returns the stopper. */
    start: (intervalMs: number): (() => Promise<void>) =>
      startPoller(
        'rule reconciliation',
        intervalMs,
        async () => {
          await run();
        },
        logger,
      ),
  };
}
export type RulesReconciler = ReturnType<typeof createRulesReconciler>;
