import { SIGNATURE_HEADER, signMessage } from '../../runtime/signing';
import { Counter, type Registry } from 'prom-client';
import { AppError } from '../../runtime/errors';
import type { Logger } from '../../runtime/logger';
import type { BackofficeOutbox, OutboxEntry } from '../outbox';
import type { RuleAudited } from '../../topics/schemas';
import type { RuleEvent } from '../../topics/schemas';
import { decide, regionWarnings, withRule, type Rejection, type RuleCommand, type RuleEntry, type RuleWarning } from './decide';
import type { RuleView } from './view';

export interface RuleWriterDeps {
  /** The rule event and its audit entry are recorded here together, then sent (backoffice/outbox.ts). */
  outbox: BackofficeOutbox;
  topics: { rules: string; audit: string };
  view: RuleView;
  registry: Registry;
  logger: Logger;
  clock: () => Date;
  newId: () => string;
  /** How long to wait for our own rule event to be read back before answering 504. */
  applyTimeoutMs: number;
  /** Signs rule events so orchestrators can tell them from forgeries (see runtime/signing.ts). */
  rulesSigningKey: string;
}

export type WriteResult =
  | { outcome: 'changed'; action: RuleAudited['action']; version: number; entry: RuleEntry | undefined; warnings: RuleWarning[] }
  | { outcome: 'unchanged'; entry: RuleEntry; warnings: RuleWarning[] }
  | Rejection;

/** Runs tasks one after another per key; tasks of different keys run concurrently. */
export function createKeyedQueue() {
  const tails = new Map<string, Promise<unknown>>();
  return <T>(key: string, task: () => Promise<T>): Promise<T> => {
    const previous = tails.get(key) ?? Promise.resolve();
    const run = previous.then(task, task);
    const tail = run.catch(() => undefined);
    tails.set(key, tail);
    void tail.then(() => {
      if (tails.get(key) === tail) tails.delete(key);
    });
    return run;
  };
}

/**
 * Writes rule changes. Writes to one gateway are serialized in this process,
 * and each one is decided against the view only after the previous write has
 * been read back from the rule topic, so of two requests based on the same
 * version exactly one wins. Across several back-office instances nothing
 * serializes them: see backoffice/README.md.
 *
 * Order of a change: the rule event (or removal) and its audit entry are
 * recorded together in the outbox, then published in that order, and the
 * rule event is read back. If anything stops them on the way (Kafka refuses,
 * the process dies), the outbox relay publishes what is left: a change and its
 * audit entry are never separated (ADR 0018).
 */
export function createRuleWriter(deps: RuleWriterDeps) {
  const { outbox, topics, view, logger, clock } = deps;
  const serialize = createKeyedQueue();
  const changes = new Counter({ name: 'backoffice_rule_changes_total', help: 'Rule changes published, by action', labelNames: ['action'], registers: [deps.registry] });
  const rejected = new Counter({ name: 'backoffice_rule_changes_rejected_total', help: 'Rule changes refused by a precondition, by code', labelNames: ['code'], registers: [deps.registry] });
  const auditFailures = new Counter({
    name: 'backoffice_audit_publish_failures_total',
    help: 'Rule changes whose audit entry was not acknowledged with the rule event: left in the outbox, which the relay publishes',
    registers: [deps.registry],
  });

  return async function write(command: RuleCommand, actor: string): Promise<WriteResult> {
    const { gatewayId } = command;
    return serialize(gatewayId, async () => {
      const beforeRules = view.rules();
      const decision = decide(command, { entry: view.get(gatewayId), lastVersion: view.lastVersionOf(gatewayId) });
      if (decision.outcome === 'rejected') {
        rejected.inc({ code: decision.code });
        return decision;
      }
      if (decision.outcome === 'unchanged') return { ...decision, warnings: regionWarnings(beforeRules, beforeRules) };

      const now = clock().toISOString();
      // A removal is a signed, versioned event like any change, never a bare tombstone (ADR 0016).
      const ruleEvent: RuleEvent =
        decision.after === null
          ? { eventId: deps.newId(), type: 'rule.removed', occurredAt: now, schemaVersion: 1, gatewayId, version: decision.version, changedBy: actor }
          : { eventId: deps.newId(), type: 'rule.changed', occurredAt: now, schemaVersion: 1, rule: decision.after, version: decision.version, changedBy: actor };
      const audit: RuleAudited = {
        eventId: deps.newId(),
        type: 'rule.audited',
        occurredAt: now,
        schemaVersion: 1,
        gatewayId,
        action: decision.action,
        actor,
        changedFields: decision.changedFields,
        before: decision.before,
        after: decision.after,
        version: decision.version,
        ...(decision.reason === undefined ? {} : { reason: decision.reason }),
      };
      // Rule events (removals included) are signed over key and body, version included; the audit trail is not routing input.
      const ruleJson = JSON.stringify(ruleEvent);
      const entries: OutboxEntry[] = [
        { topic: topics.rules, key: gatewayId, value: ruleJson, headers: { [SIGNATURE_HEADER]: signMessage(deps.rulesSigningKey, gatewayId, ruleJson) } },
        { topic: topics.audit, key: gatewayId, value: JSON.stringify(audit) },
      ];
      const writeId = ruleEvent.eventId;
      await outbox.record(writeId, entries);
      // Recorded: this version is spent whatever happens to the sends, so the next change never reuses it.
      view.noteVersion(gatewayId, decision.version);
      const { sent, failed } = await outbox.send(writeId, entries);
      const offset = sent.find((entry) => entry.topic === topics.rules)?.offset;
      const fields = { gatewayId, action: decision.action, version: decision.version, actor, writeId };
      if (offset === undefined) {
        logger.error({ ...fields, err: failed?.error }, 'rule change recorded but not published yet; the outbox relay will publish it with its audit entry');
        throw new AppError(
          503,
          'not_published',
          `the change (version ${decision.version}) is recorded and will be published with its audit entry when Kafka takes it; read the gateway back before changing it again`,
        );
      }
      changes.inc({ action: decision.action });
      logger.info({ ...fields, changedFields: decision.changedFields, offset }, 'rule change published');
      if (failed) {
        // The rule change is in force; its audit entry waits in the outbox, which the relay publishes.
        auditFailures.inc();
        logger.warn({ ...fields, err: failed.error }, 'rule change published; its audit entry stays in the outbox until the relay publishes it');
      }

      // Read our own write back before the next write to this gateway is decided (and before answering).
      if (!(await view.untilApplied(gatewayId, offset, deps.applyTimeoutMs))) {
        throw new AppError(504, 'not_applied', `the change was published (version ${decision.version}) but not read back within ${deps.applyTimeoutMs} ms`);
      }
      return {
        outcome: 'changed',
        action: decision.action,
        version: decision.version,
        entry: view.get(gatewayId),
        warnings: regionWarnings(beforeRules, withRule(beforeRules, gatewayId, decision.after)),
      };
    });
  };
}
export type RuleWriter = ReturnType<typeof createRuleWriter>;
