// `npm run topics:create` and the compose `topics` service: creates every topic
// the stack needs (one request topic per gateway in the rules file), leaving
// existing topics alone, then seeds the rule topic with the rules file for
// every gateway that has no rule there yet, then exits 0.
import { Kafka, logLevel } from 'kafkajs';
import { createKafka, createPublisher, kafkaMetrics } from '../runtime/kafka';
import { createLogger } from '../runtime/logger';
import { createMetricsRegistry } from '../runtime/metrics';
import { seedRules } from './seed-rules';
import { signingEnv } from '../runtime/signing';
import { z } from 'zod';
import { readRulesFile } from '../orchestrator/routing/rules';
import { commonEnv, parseConfig } from '../runtime/config';
import { runMain } from '../runtime/lifecycle';
import { ensureTopics } from './create';
import { topicSpecs, type TopicLayout } from './names';

const topicsCliEnv = z.object({
  ...signingEnv,
  KAFKA_BROKERS: commonEnv.KAFKA_BROKERS,
  TOPIC_PREFIX: commonEnv.TOPIC_PREFIX,
  // The topics' layout; the durability check in parseConfig refuses settings that can lose acknowledged messages.
  KAFKA_REPLICATION_FACTOR: commonEnv.KAFKA_REPLICATION_FACTOR,
  KAFKA_MIN_INSYNC_REPLICAS: commonEnv.KAFKA_MIN_INSYNC_REPLICAS,
  KAFKA_DEVELOPMENT_SETUP: commonEnv.KAFKA_DEVELOPMENT_SETUP,
  PAYMENT_PARTITIONS: commonEnv.PAYMENT_PARTITIONS,
  /** The gateways whose request topics to create: the same seed rules the orchestrator reads. */
  GATEWAY_RULES_FILE: z.string().default('config/gateways.json'),
});

/** Every variable this CLI reads (docker-compose.yml is checked against it). */
export const topicsCliEnvKeys = Object.keys(topicsCliEnv.shape);

export const loadTopicsCliConfig = (env: Record<string, string | undefined>) => parseConfig(topicsCliEnv, env);

/** The topic layout a service's configuration asks for. */
export const topicLayoutOf = (config: { PAYMENT_PARTITIONS: number; KAFKA_REPLICATION_FACTOR: number; KAFKA_MIN_INSYNC_REPLICAS: number }): TopicLayout => ({
  paymentPartitions: config.PAYMENT_PARTITIONS,
  replicationFactor: config.KAFKA_REPLICATION_FACTOR,
  minInsyncReplicas: config.KAFKA_MIN_INSYNC_REPLICAS,
});

/** Creates the missing topics and seeds missing rules; resolves with what it created and seeded. */
export async function createStackTopics(env: Record<string, string | undefined>): Promise<{ created: string[]; seeded: string[] }> {
  const config = loadTopicsCliConfig(env);
  const rules = readRulesFile(config.GATEWAY_RULES_FILE);
  const admin = new Kafka({ clientId: 'topics-cli', brokers: config.KAFKA_BROKERS, logLevel: logLevel.ERROR }).admin();
  await admin.connect();
  let created: string[];
  try {
    created = await ensureTopics(admin, topicSpecs(config.TOPIC_PREFIX, rules.map((rule) => rule.gatewayId), topicLayoutOf(config)));
  } finally {
    await admin.disconnect();
  }
  const logger = createLogger('topics-cli', 'warn');
  const kafka = createKafka(config.KAFKA_BROKERS, 'topics-cli', logger);
  const publisher = await createPublisher(kafka, kafkaMetrics(createMetricsRegistry('topics-cli')));
  try {
    const seeded = await seedRules({ kafka, publisher, topicPrefix: config.TOPIC_PREFIX, logger, rulesSigningKey: config.RULES_SIGNING_KEY }, rules);
    return { created, seeded };
  } finally {
    await publisher.producer.disconnect();
  }
}

if (require.main === module) {
  runMain(async () => {
    const { created, seeded } = await createStackTopics(process.env);
    process.stdout.write(created.length > 0 ? `created topics: ${created.join(', ')}\n` : 'all topics already exist\n');
    process.stdout.write(seeded.length > 0 ? `seeded rules for: ${seeded.join(', ')}\n` : 'every gateway already has rules\n');
  });
}
