import { SIGNATURE_HEADER, signMessage } from '../../runtime/signing';
import type { Producer } from 'kafkajs';
import { Counter, type Registry } from 'prom-client';
import { AppError } from '../../runtime/errors';
import type { KafkaMetrics } from '../../runtime/kafka';
import type { Logger } from '../../runtime/logger';
import type { RuleAudited } from '../../topics/schemas';
import type { RuleEvent } from '../../topics/schemas';
import { decide, regionWarnings, withRule, type Rejection, type RuleCommand, type RuleEntry, type RuleWarning } from './decide';
import type { RuleView } from './view';

export interface RuleWriterDeps {
  producer: Producer;
  topics: { rules: string; audit: string };
  view: RuleView;
  kafkaMetrics: KafkaMetrics;
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
 * Order of a change: the rule event (or removal) is published and read
 * back, then the audit event is published.
 */
export function createRuleWriter(deps: RuleWriterDeps) {
  const { producer, topics, view, logger, clock } = deps;
  const serialize = createKeyedQueue();
  const changes = new Counter({ name: 'backoffice_rule_changes_total', help: 'Rule changes published, by action', labelNames: ['action'], registers: [deps.registry] });
  const rejected = new Counter({ name: 'backoffice_rule_changes_rejected_total', help: 'Rule changes refused by a precondition, by code', labelNames: ['code'], registers: [deps.registry] });
  const auditFailures = new Counter({
    name: 'backoffice_audit_publish_failures_total',
    help: 'Rule changes whose audit event could not be published after the rule event was',
    registers: [deps.registry],
  });

  const send = async (topic: string, key: string, value: string): Promise<string> => {
    // Rule events (removals included) are signed over key and body, version included; the audit trail is not routing input.
    const headers = topic === topics.rules ? { [SIGNATURE_HEADER]: signMessage(deps.rulesSigningKey, key, value) } : undefined;
    const [metadata] = await producer.send({ topic, acks: -1, messages: [{ key, value, ...(headers ? { headers } : {}) }] });
    deps.kafkaMetrics.produced.inc({ topic });
    deps.kafkaMetrics.produceRequests.inc({ kind: 'single-topic' });
    if (metadata?.baseOffset === undefined) throw new Error(`no offset in the acknowledgement from ${topic}`);
    return metadata.baseOffset;
  };

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
      const offset = await send(topics.rules, gatewayId, JSON.stringify(ruleEvent));
      view.noteVersion(gatewayId, decision.version);
      changes.inc({ action: decision.action });
      logger.info({ gatewayId, action: decision.action, version: decision.version, actor, changedFields: decision.changedFields, offset }, 'rule change published');

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
      try {
        await send(topics.audit, gatewayId, JSON.stringify(audit));
      } catch (error) {
        // The rule change is already in force; answering an error would only make the caller retry into a 412.
        auditFailures.inc();
        logger.critical({ err: error, audit }, 'rule changed but its audit event could not be published');
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
