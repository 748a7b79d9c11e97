import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, type KafkaConfig } from 'kafkajs';
import { createLogger } from '../../runtime/logger';
import { localKafkaCredentials } from '../../scripts/kafka-local';

/** Where this test run's Kafka and Redis are (set by global-setup). */
export function testEnv() {
  const brokers = process.env.TEST_KAFKA_BROKERS;
  const redisUrl = process.env.TEST_REDIS_URL;
  const runId = process.env.TEST_RUN_ID;
  if (!brokers || !redisUrl || !runId) throw new Error('TEST_* variables missing: run the tests through jest (global-setup)');
  return { brokers, redisUrl, runId, kafkaSecurity: kafkaSecurity() };
}

/**
 * How the run's brokers authenticate: `sasl` on the project's local broker (SCRAM users of
 * scripts/kafka/local-users, ACLs from topics/acls.ts), `plaintext` on KAFKA_BROKERS or a container.
 */
export const kafkaSecurity = (): 'sasl' | 'plaintext' => (process.env.TEST_KAFKA_SECURITY === 'sasl' ? 'sasl' : 'plaintext');

/** The KAFKA_SASL_* variables of a local broker user (none on a plaintext broker): `orchestrator`, `gateway`, `backoffice`, `admin`. */
export const kafkaCredentials = (user: string, security = kafkaSecurity()): Record<string, string> =>
  security === 'sasl' ? localKafkaCredentials(user) : {};

/** A service's environment: `env` with the service's own broker principal instead of whichever it had. */
export const asService = (env: Record<string, string>, service: 'orchestrator' | 'gateway' | 'backoffice', security = kafkaSecurity()): Record<string, string> => {
  const { KAFKA_SASL_MECHANISM: _mechanism, KAFKA_SASL_USERNAME: _username, KAFKA_SASL_PASSWORD: _password, ...rest } = env;
  return { ...rest, ...kafkaCredentials(service, security) };
};

/**
 * A Kafka client of the test harness itself, as the brokers' super user (`admin`): it creates topics and ACLs,
 * publishes forged and replayed messages, and reads every topic a test checks.
 */
export function harnessKafka(brokers: string, clientId = 'test', security = kafkaSecurity(), extra: Partial<KafkaConfig> = {}): Kafka {
  const admin = kafkaCredentials('admin', security);
  const sasl = admin.KAFKA_SASL_USERNAME
    ? { sasl: { mechanism: 'scram-sha-512' as const, username: admin.KAFKA_SASL_USERNAME, password: admin.KAFKA_SASL_PASSWORD ?? '' } }
    : {};
  return new Kafka({ clientId, brokers: brokers.split(','), logLevel: logLevel.NOTHING, ...sasl, ...extra });
}

/** A namespace of its own for one test: topic and Redis key prefixes nobody else uses. */
export function isolatedNamespace() {
  const { brokers, redisUrl, runId } = testEnv();
  const id = randomUUID().slice(0, 8);
  return {
    brokers,
    redisUrl,
    topicPrefix: `t${runId}-${id}.`,
    redisKeyPrefix: `test:${runId}:${id}:`,
  };
}

/** Quiet unless TEST_LOG_LEVEL asks for more. */
export const testLogger = (name: string) => createLogger(name, process.env.TEST_LOG_LEVEL ?? 'silent');

/** Authorization header with every scope (minted by global-setup with the development key). */
export function authHeaders(): Record<string, string> {
  const token = process.env.TEST_TOKEN;
  if (!token) throw new Error('TEST_TOKEN missing: run the tests through jest (global-setup)');
  return { authorization: `Bearer ${token}` };
}

/** fetch() with the test token: for the authenticated API routes. */
export function fetchApi(url: string, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { ...init, headers: { ...authHeaders(), ...(init.headers as Record<string, string> | undefined) } });
}
