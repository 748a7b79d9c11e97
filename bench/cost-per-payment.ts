/**
 * Counts what one payment costs the orchestrator: Redis commands (each a
 * round trip; none are pipelined) and Kafka produce requests and messages.
 * Runs its own in-process stack (one orchestrator, two healthy sandbox
 * gateways) under a fresh topic and key prefix, sends N payments and waits
 * for every terminal status event, and reads Redis' own command counters and
 * the orchestrator's metrics before and after.
 *
 *   npm run bench:cost [-- --payments 1000]
 *
 * Kafka: KAFKA_BROKERS, else the local broker on 127.0.0.1:9092 (started if
 * needed, and then stopped when this exits, however it exits: the reaper,
 * scripts/reaper.ts, holds its pid). Redis: REDIS_URL (default redis://127.0.0.1:6379); other clients
 * of the same Redis skew the counts, so run it on a quiet one.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import Redis from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { startGateway } from '../gateways/main';
import { loadGatewayConfig } from '../gateways/config';
import { startOrchestrator } from '../orchestrator/main';
import { loadOrchestratorConfig } from '../orchestrator/config';
import { DEVELOPMENT_SIGNING_KEY, mintToken } from '../runtime/auth';
import { DEVELOPMENT_RULES_KEY, SIGNATURE_HEADER, signMessage } from '../runtime/signing';
import { createLogger } from '../runtime/logger';
import { startLocalKafka } from '../scripts/kafka-local';
import { ensureTopics } from '../topics/create';
import { topicNames, topicSpecs } from '../topics/names';
import type { GatewayRule, RuleChanged } from '../topics/schemas';
import { scrapeMetric } from './metrics';

const PAYMENTS = Number(process.argv[process.argv.indexOf('--payments') + 1] || 500);
const CONCURRENCY = 20;

async function redisCalls(redis: Redis): Promise<Map<string, number>> {
  const calls = new Map<string, number>();
  for (const line of (await redis.info('commandstats')).split('\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (match?.[1] && match[2]) calls.set(match[1], Number(match[2]));
  }
  return calls;
}

async function main(): Promise<void> {
  const brokers = process.env.KAFKA_BROKERS ?? (await startLocalKafka({ port: 9092, quiet: true, stopOnExit: true })).brokers;
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const run = randomUUID().slice(0, 8);
  const env = { KAFKA_BROKERS: brokers, REDIS_URL: redisUrl, REDIS_KEY_PREFIX: `bench:${run}:`, TOPIC_PREFIX: `bench-${run}.`, PORT: '0', LOG_LEVEL: 'silent' };
  const topics = topicNames(env.TOPIC_PREFIX);
  const rule = (gatewayId: string): GatewayRule => ({
    gatewayId,
    enabled: true,
    regions: ['EU'],
    paymentTypes: ['deposit', 'withdrawal'],
    currencies: ['EUR'],
    // Selection routes no currency without a bound (no-amount-bound).
    amountBounds: { EUR: { min: '1', max: '999999999999999999' } },
    weight: 1,
    timeoutMs: 5000,
    timeoutPolicy: { deposit: 'failover', withdrawal: 'cancel-first' },
    available: true,
  });
  const rules = [rule('one'), rule('two')];
  const kafka = new Kafka({ clientId: 'bench', brokers: brokers.split(','), logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopics(admin, topicSpecs(env.TOPIC_PREFIX, rules.map((r) => r.gatewayId)));
  await admin.disconnect();
  const producer = kafka.producer();
  await producer.connect();
  const ruleEvents: RuleChanged[] = rules.map((r) => ({ eventId: randomUUID(), type: 'rule.changed', occurredAt: new Date().toISOString(), schemaVersion: 1, rule: r, version: 1, changedBy: 'bench' }));
  await producer.send({
    topic: topics.rules,
    messages: ruleEvents.map((event) => {
      const value = JSON.stringify(event);
      return { key: event.rule.gatewayId, value, headers: { [SIGNATURE_HEADER]: signMessage(DEVELOPMENT_RULES_KEY, event.rule.gatewayId, value) } };
    }),
  });
  await producer.disconnect();

  const silent = createLogger('bench', 'silent');
  const gateways = await Promise.all(rules.map((r) => startGateway(loadGatewayConfig({ ...env, GATEWAY_ID: r.gatewayId }), { logger: silent })));
  const orchestrator = await startOrchestrator(loadOrchestratorConfig(env), { logger: silent });
  const baseUrl = `http://127.0.0.1:${orchestrator.port}`;

  const token = await mintToken({ secret: DEVELOPMENT_SIGNING_KEY, issuer: 'payment-orchestrator' }, 'bench', ['payments:write']);
  const terminal = new Set<string>();
  let wake: () => void = () => undefined;
  const watcher = kafka.consumer({ groupId: `bench-${run}`, maxWaitTimeInMs: 100 });
  await watcher.connect();
  await watcher.subscribe({ topic: topics.paymentStatus, fromBeginning: true });
  await watcher.run({
    eachMessage: async ({ message }) => {
      const event = JSON.parse(message.value?.toString() ?? '{}') as { paymentId: string; status: string };
      if (event.status !== 'PENDING') terminal.add(event.paymentId);
      if (terminal.size >= PAYMENTS) wake();
    },
  });

  const redis = new Redis(redisUrl);
  const before = await redisCalls(redis);
  const producedBefore = await scrapeMetric(baseUrl, 'kafka_messages_produced_total');
  const requestsBefore = await scrapeMetric(baseUrl, 'kafka_produce_requests_total');
  const started = Date.now();
  const allTerminal = new Promise<void>((resolve) => (wake = resolve));
  for (let sent = 0; sent < PAYMENTS; sent += CONCURRENCY) {
    await Promise.all(
      Array.from({ length: Math.min(CONCURRENCY, PAYMENTS - sent) }, () =>
        fetch(`${baseUrl}/v1/payments`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'Idempotency-Key': randomUUID(), authorization: `Bearer ${token}` },
          body: JSON.stringify({ type: 'deposit', accountId: 'acc-bench', amount: '1000', currency: 'EUR', region: 'EU' }),
        }),
      ),
    );
  }
  await allTerminal;
  const elapsedS = (Date.now() - started) / 1000;
  const after = await redisCalls(redis);
  const produced = (await scrapeMetric(baseUrl, 'kafka_messages_produced_total')) - producedBefore;
  const requests = (await scrapeMetric(baseUrl, 'kafka_produce_requests_total')) - requestsBefore;

  const perCommand = [...after]
    .map(([command, calls]) => [command, (calls - (before.get(command) ?? 0)) / PAYMENTS] as const)
    .filter(([command, perPayment]) => perPayment > 0 && command !== 'info')
    .sort((a, b) => b[1] - a[1]);
  // Redis counts the commands a script runs too; only these are sent by the client, one round trip each.
  const clientCommands = new Set(['evalsha', 'eval', 'hmget', 'hgetall', 'zrangebyscore', 'smembers', 'quit']);
  const roundTrips = perCommand.filter(([command]) => clientCommands.has(command)).reduce((sum, [, perPayment]) => sum + perPayment, 0);
  const redisPerPayment = perCommand.reduce((sum, [, perPayment]) => sum + perPayment, 0);
  const result = {
    date: new Date().toISOString(),
    machine: { cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    command: `npm run bench:cost -- --payments ${PAYMENTS}`,
    payments: PAYMENTS,
    elapsedSeconds: elapsedS,
    redisRoundTripsPerPayment: Number(roundTrips.toFixed(2)),
    redisCommandsPerPaymentIncludingInsideScripts: Number(redisPerPayment.toFixed(2)),
    redisByCommand: Object.fromEntries(perCommand.map(([command, perPayment]) => [command, Number(perPayment.toFixed(2))])),
    kafkaMessagesProducedPerPayment: Number((produced / PAYMENTS).toFixed(2)),
    kafkaProduceRequestsPerPayment: Number((requests / PAYMENTS).toFixed(2)),
  };
  console.log(JSON.stringify(result, null, 2));
  mkdirSync('docs/benchmarks', { recursive: true });
  writeFileSync('docs/benchmarks/cost-per-payment.json', `${JSON.stringify(result, null, 2)}\n`);

  redis.disconnect();
  await watcher.disconnect();
  await orchestrator.stop();
  for (const gateway of gateways) await gateway.stop();
  // Leave the keys of this run behind? No: they would skew the next run's idle counts.
  const cleanup = new Redis(redisUrl);
  const keys = await cleanup.keys(`bench:${run}:*`);
  if (keys.length > 0) await cleanup.del(...keys);
  cleanup.disconnect();
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
