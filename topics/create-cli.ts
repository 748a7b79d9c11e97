// `npm run topics:create` and the compose `topics` service: creates every topic
// the stack needs (one request topic per gateway in the rules file), leaving
// existing topics alone, then exits 0.
import { Kafka, logLevel } from 'kafkajs';
import { z } from 'zod';
import { readRulesFile } from '../orchestrator/routing/rules';
import { commonEnv, parseConfig } from '../runtime/config';
import { runMain } from '../runtime/lifecycle';
import { ensureTopics } from './create';
import { topicSpecs } from './names';

const topicsCliEnv = z.object({
  KAFKA_BROKERS: commonEnv.KAFKA_BROKERS,
  TOPIC_PREFIX: commonEnv.TOPIC_PREFIX,
  /** The gateways whose request topics to create: the same seed rules the orchestrator reads. */
  GATEWAY_RULES_FILE: z.string().default('config/gateways.json'),
});

/** Every variable this CLI reads (docker-compose.yml is checked against it). */
export const topicsCliEnvKeys = Object.keys(topicsCliEnv.shape);

export const loadTopicsCliConfig = (env: Record<string, string | undefined>) => parseConfig(topicsCliEnv, env);

/** Creates the missing topics; resolves with their names. */
export async function createStackTopics(env: Record<string, string | undefined>): Promise<string[]> {
  const config = loadTopicsCliConfig(env);
  const gatewayIds = readRulesFile(config.GATEWAY_RULES_FILE).map((rule) => rule.gatewayId);
  const admin = new Kafka({ clientId: 'topics-cli', brokers: config.KAFKA_BROKERS, logLevel: logLevel.ERROR }).admin();
  await admin.connect();
  try {
    return await ensureTopics(admin, topicSpecs(config.TOPIC_PREFIX, gatewayIds));
  } finally {
    await admin.disconnect();
  }
}

if (require.main === module) {
  runMain(async () => {
    const created = await createStackTopics(process.env);
    process.stdout.write(created.length > 0 ? `created topics: ${created.join(', ')}\n` : 'all topics already exist\n');
  });
}
