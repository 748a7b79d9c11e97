// `npm run topics:create` and the compose `topics` service: creates every topic
// the stack needs (one request topic per gateway in the rules file), leaving
// existing topics alone, gives each service's principal its rights on them
// (topics/acls.ts) when the brokers authenticate, then seeds the rule topic
// with the rules file for every gateway that has no rule there yet, then exits 0.
// It runs as the setup principal, a super user of the brokers.
import { createKafka, createPublisher, kafkaConnectionOf, kafkaMetrics } from '../runtime/kafka';
import { createLogger } from '../runtime/logger';
import { createMetricsRegistry } from '../runtime/metrics';
import { seedRules } from './seed-rules';
import { signingEnv } from '../runtime/signing';
import { z } from 'zod';
import { readRulesFile } from '../orchestrator/routing/rules';
import { commonEnv, parseConfig } from '../runtime/config';
import { runMain } from '../runtime/lifecycle';
import { errorMessage } from '../runtime/errors';
import { applyAcls, aclTable, DEFAULT_PRINCIPALS, principalPattern, type Principals } from './acls';
import { ensureTopics } from './create';
import { topicSpecs, type TopicLayout } from './names';

const topicsCliEnv = z.object({
  ...signingEnv,
  KAFKA_BROKERS: commonEnv.KAFKA_BROKERS,
  // The setup principal's credentials: a super user of the brokers, which may create topics and ACLs.
  KAFKA_SASL_MECHANISM: commonEnv.KAFKA_SASL_MECHANISM,
  KAFKA_SASL_USERNAME: commonEnv.KAFKA_SASL_USERNAME,
  KAFKA_SASL_PASSWORD: commonEnv.KAFKA_SASL_PASSWORD,
  KAFKA_SSL: commonEnv.KAFKA_SSL,
  /**
   * Whether to create the services' ACLs (topics/acls.ts): `true`, `false`, or `auto` (the default), which creates
   * them when this CLI authenticates (KAFKA_SASL_MECHANISM set) and not on a plaintext broker, which has no authorizer.
   * `false` on a managed cluster whose ACLs are managed elsewhere.
   */
  KAFKA_ACLS: z.enum(['auto', 'true', 'false']).default('auto'),
  /** The principals the ACLs name (`User:<SASL user name>`); `{gatewayId}` in the gateway's gives each gateway its own. */
  KAFKA_ORCHESTRATOR_PRINCIPAL: z.string().regex(/^\w+:.+$/).default(DEFAULT_PRINCIPALS.orchestrator),
  KAFKA_GATEWAY_PRINCIPAL: z.string().regex(/^\w+:.+$/).default(DEFAULT_PRINCIPALS.gateway('{gatewayId}')),
  KAFKA_BACKOFFICE_PRINCIPAL: z.string().regex(/^\w+:.+$/).default(DEFAULT_PRINCIPALS.backoffice),
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

/** The principals a topics CLI configuration names in the ACLs. */
export const principalsOf = (config: { KAFKA_ORCHESTRATOR_PRINCIPAL: string; KAFKA_GATEWAY_PRINCIPAL: string; KAFKA_BACKOFFICE_PRINCIPAL: string }): Principals => ({
  orchestrator: config.KAFKA_ORCHESTRATOR_PRINCIPAL,
  gateway: principalPattern(config.KAFKA_GATEWAY_PRINCIPAL),
  backoffice: config.KAFKA_BACKOFFICE_PRINCIPAL,
});

/** Creates the missing topics and the services' ACLs, and seeds missing rules; resolves with what it created and seeded. */
export async function createStackTopics(env: Record<string, string | undefined>): Promise<{ created: string[]; seeded: string[] }> {
  const config = loadTopicsCliConfig(env);
  const rules = readRulesFile(config.GATEWAY_RULES_FILE);
  const gatewayIds = rules.map((rule) => rule.gatewayId);
  const logger = createLogger('topics-cli', 'warn');
  const connection = kafkaConnectionOf(config);
  const kafka = createKafka(connection, 'topics-cli', logger);
  // Its own quiet client: waiting for new topics' leaders makes kafkajs log "not the leader" errors that are expected.
  const admin = createKafka(connection, 'topics-cli', createLogger('topics-cli', 'fatal')).admin();
  let created: string[];
  try {
    await admin.connect();
    created = await ensureTopics(admin, topicSpecs(config.TOPIC_PREFIX, gatewayIds, topicLayoutOf(config)));
    const acls = config.KAFKA_ACLS === 'auto' ? config.KAFKA_SASL_MECHANISM !== undefined : config.KAFKA_ACLS === 'true';
    if (acls) await applyAcls(admin, aclTable(config.TOPIC_PREFIX, gatewayIds, principalsOf(config)));
  } catch (error) {
    // A broker that requires SASL closes the connection of a client that does not authenticate.
    if (connection.sasl === undefined && errorMessage(error) === 'Closed connection') {
      throw new Error('the brokers closed the connection: do they require authentication? Set KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (docs/security.md)');
    }
    throw error;
  } finally {
    await admin.disconnect();
  }
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
