import { randomUUID } from 'node:crypto';
import { followCompactedTopic } from '../runtime/compacted';
import { loadSeedConfig } from './seed-config';
import { createKafka, createPublisher, kafkaMetrics, type Publisher } from '../runtime/kafka';
import { createLogger, type Logger } from '../runtime/logger';
import { createMetricsRegistry } from '../runtime/metrics';
import { readRulesFile } from '../orchestrator/routing/rules';
import { topicNames } from '../topics/names';
import { ruleChanged, type GatewayRule, type RuleChanged } from '../topics/schemas';
import type { Kafka } from 'kafkajs';

/**
 * Publishes seed rules to the rule topic for every gateway that has no rule
 * there yet, so a fresh stack has routing and a restarted one keeps what
 * operators changed since. Returns the gateway ids it published.
 */
export async function seedRules(deps: { kafka: Kafka; publisher: Publisher; topicPrefix: string; logger: Logger }, rules: GatewayRule[]): Promise<string[]> {
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
    events.map((event) => ({ key: event.rule.gatewayId, value: event })),
  );
  return missing.map((rule) => rule.gatewayId);
}

if (require.main === module) {
  void (async () => {
    const config = loadSeedConfig(process.env);
    const logger = createLogger('seed-rules', config.LOG_LEVEL);
    const kafka = createKafka(config.KAFKA_BROKERS, 'seed-rules', logger);
    const publisher = await createPublisher(kafka, kafkaMetrics(createMetricsRegistry('seed-rules')));
    try {
      const seeded = await seedRules({ kafka, publisher, topicPrefix: config.TOPIC_PREFIX, logger }, readRulesFile(config.GATEWAY_RULES_FILE));
      console.log(seeded.length > 0 ? `seeded rules for ${seeded.join(', ')}` : 'every gateway already has rules; nothing seeded');
    } finally {
      await publisher.producer.disconnect();
    }
  })().catch((error: unknown) => {
    console.error(`seeding rules failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
