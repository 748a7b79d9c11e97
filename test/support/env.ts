import { randomUUID } from 'node:crypto';
import { createLogger } from '../../runtime/logger';

/** Where this test run's Kafka and Redis are (set by global-setup). */
export function testEnv() {
  const brokers = process.env.TEST_KAFKA_BROKERS;
  const redisUrl = process.env.TEST_REDIS_URL;
  const runId = process.env.TEST_RUN_ID;
  if (!brokers || !redisUrl || !runId) throw new Error('TEST_* variables missing: run the tests through jest (global-setup)');
  return { brokers, redisUrl, runId };
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
