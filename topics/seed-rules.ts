import { SIGNATURE_HEADER, ruleSignatureCheck, signMessage } from '../runtime/signing';
import { randomUUID } from 'node:crypto';
import { followCompactedTopic } from '../runtime/compacted';
import { kafkaMetrics, type Publisher } from '../runtime/kafka';
import type { Logger } from '../runtime/logger';
import { createMetricsRegistry } from '../runtime/metrics';
import { topicNames } from './names';
import { ruleEvent, ruleEventGateway, type GatewayRule, type RuleChanged, type RuleEvent } from './schemas';
import type { Kafka } from 'kafkajs';

/**
 * The latest signed event per gateway on the rule topic, by version as every reader applies them (ADR 0016):
 * a replayed older event, a forgery, a bare tombstone or an event under another gateway's key changes nothing.
 */
export function latestRuleEvents() {
  const latest = new Map<string, RuleEvent>();
  return {
    apply(gatewayId: string, event: RuleEvent): void {
      if (ruleEventGateway(event) !== gatewayId) return;
      if (event.version <= (latest.get(gatewayId)?.version ?? 0)) return;
      latest.set(gatewayId, event);
    },
    /** True once the gateway has had any signed event: a live rule, or a removal (which must not be undone by a seed). */
    has: (gatewayId: string): boolean => latest.has(gatewayId),
  };
}

/**
 * Publishes seed rules to the rule topic for every gateway that has no signed
 * event there yet, so a fresh stack has routing and a restarted one keeps what
 * operators changed since. A gateway whose latest event is a signed removal is
 * never seeded again: an operator removed it. Returns the gateway ids it
 * published.
 *
 * It reads both kinds of rule event, so a `rule.removed` is no longer parked on
 * every run; what it refuses (a forgery, a bare tombstone) it only logs: the
 * orchestrators park each refused message once (ADR 0016).
 */
export async function seedRules(
  deps: { kafka: Kafka; publisher: Publisher; topicPrefix: string; logger: Logger; rulesSigningKey: string },
  rules: GatewayRule[],
): Promise<string[]> {
  const topics = topicNames(deps.topicPrefix);
  const latest = latestRuleEvents();
  const follower = await followCompactedTopic({
    kafka: deps.kafka,
    topic: topics.rules,
    schema: ruleEvent,
    authenticate: ruleSignatureCheck(deps.rulesSigningKey),
    tombstones: 'refuse',
    parked: { claim: async () => false, release: async () => undefined },
    apply: (key, value) => {
      if (value !== null) latest.apply(key, value);
    },
    publisher: deps.publisher,
    deadLetterTopic: topics.deadLetter,
    metrics: kafkaMetrics(createMetricsRegistry('seed-rules')),
    logger: deps.logger,
    name: `${deps.topicPrefix}seed-rules`,
  });
  await follower.caughtUp;
  await follower.consumer.disconnect();

  const missing = rules.filter((rule) => !latest.has(rule.gatewayId));
  const events: RuleChanged[] = missing.map((rule) => ({
    eventId: randomUUID(),
    type: 'rule.changed',
    occurredAt: new Date().toISOString(),
    schemaVersion: 1,
    rule,
    version: 1,
    changedBy: 'seed',
  }));
  await deps.publisher.publish(
    topics.rules,
    events.map((event) => ({
      key: event.rule.gatewayId,
      value: event,
      headers: { [SIGNATURE_HEADER]: signMessage(deps.rulesSigningKey, event.rule.gatewayId, JSON.stringify(event)) },
    })),
  );
  return missing.map((rule) => rule.gatewayId);
}
