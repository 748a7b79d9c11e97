import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startLocalKafka } from '../scripts/kafka-local';
import { DEVELOPMENT_SIGNING_KEY, mintToken } from '../runtime/auth';
import { freePort } from '../scripts/processes';

/**
 * Finds a Kafka broker for the test run, in this order: KAFKA_BROKERS if set;
 * else a Confluent broker in a container when a Docker engine answers; else
 * the project's local Apache Kafka (KRaft) on its own test port, so tests
 * never touch a local stack on 9092. The local broker authenticates
 * (SASL/SCRAM) and authorizes (ACLs) as `npm start`'s does: the harness is its
 * super user, each service it starts has a principal of its own. Workers read
 * the result from TEST_* variables.
 */
export default async function globalSetup(): Promise<void> {
  process.env.TEST_RUN_ID = randomUUID().slice(0, 8);
  process.env.TEST_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  // KAFKA_BROKERS and a container are plaintext brokers: no authentication, no ACLs.
  process.env.TEST_KAFKA_SECURITY = 'plaintext';
  process.env.TEST_KAFKA_BROKERS = await findKafka();
  // A token with every scope, as the services in tests use the development key.
  process.env.TEST_TOKEN = await mintToken({ secret: DEVELOPMENT_SIGNING_KEY, issuer: 'payment-orchestrator' }, 'test-suite', [
    'payments:write',
    'payments:read',
  ]);
}

async function findKafka(): Promise<string> {
  if (process.env.KAFKA_BROKERS) return process.env.KAFKA_BROKERS;
  const container = await startKafkaContainer();
  if (container) return container;
  // Free ports of its own, so concurrent test runs and a local stack never collide.
  const [port, controllerPort] = [await freePort(), await freePort()];
  const dataDir = mkdtempSync(path.join(tmpdir(), 'pgo-test-kafka-'));
  const started = Date.now();
  // The reaper that stops it if jest dies before global-teardown belongs to this process, jest's main one, not to a worker.
  const kafka = await startLocalKafka({ port, controllerPort, dataDir, quiet: true, security: 'sasl', stopOnExit: true });
  process.env.TEST_KAFKA_SECURITY = kafka.security;
  process.stderr.write(`\ntest Kafka: local Apache Kafka on ${kafka.brokers}, SASL/SCRAM and ACLs (ready in ${Date.now() - started} ms)\n`);
  testGlobals.stop = async () => {
    await kafka.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  return kafka.brokers;
}

/** Starts @testcontainers/kafka when testcontainers finds a container runtime; undefined otherwise. */
async function startKafkaContainer(): Promise<string | undefined> {
  const { getContainerRuntimeClient } = await import('testcontainers');
  try {
    await getContainerRuntimeClient();
  } catch {
    return undefined;
  }
  const { KafkaContainer } = await import('@testcontainers/kafka');
  const container = await new KafkaContainer('confluentinc/cp-kafka:7.9.0').withKraft().start();
  testGlobals.stop = async () => {
    await container.stop();
  };
  process.stderr.write(`\ntest Kafka: container ${container.getHost()}:${container.getMappedPort(9093)}\n`);
  return `${container.getHost()}:${container.getMappedPort(9093)}`;
}

/** Shared with global-teardown, which jest runs in the same process. */
export const testGlobals: { stop?: () => Promise<void> } = ((globalThis as { __pgoTest?: object }).__pgoTest ??= {});
