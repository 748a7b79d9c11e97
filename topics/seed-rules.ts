import { SIGNATURE_HEADER, signMessage } from '../runtime/signing';
import { randomUUID } from 'node:crypto';
import { followCompactedTopic } from '../runtime/compacted';
import { kafkaMetrics, type Publisher } from '../runtime/kafka';
import type { Logger } from '../runtime/logger';
import { createMetricsRegistry } from '../runtime/metrics';
import { topicNames } from './names';
import { ruleChanged, type GatewayRule, type RuleChanged } from './schemas';
import type { Kafka } from 'kafkajs';

/**
 * Publishes seed rules to the rule topic for every gateway that has no rule
 * there yet, so a fresh stack has routing and a restarted one keeps what
 * operators changed since. Returns the gateway ids it published.
 */
export async function seedRules(
  deps: { kafka: Kafka; publisher: Publisher; topicPrefix: string; logger: Logger; rulesSigningKey: string },
  rules: GatewayRule[],
): Promise<string[]> {
  const topics = topicNames(deps.topicPrefix);
  const present = new Set<string>();
  const follower = await followCompactedTopic({
    kafka: deps.kafka,
    topic: topics.rules,
    schema: ruleChanged,
    apply: (key, value) => {
      if (value === null) present.delete(key);
      else present.add(key);
    },
    publisher: deps.publisher,
    deadLetterTopic: topics.deadLetter,
    metrics: kafkaMetrics(createMetricsRegistry('seed-rules')),
    logger: deps.logger,
    name: `${deps.topicPrefix}seed-rules`,
  });
  await follower.caughtUp;
  await follower.consumer.disconnect();

  const missing = rules.filter((rule) => !present.has(rule.gatewayId));
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

