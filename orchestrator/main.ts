import { randomUUID } from 'node:crypto';
import { createHttpApp, listen } from '../runtime/http';
import { createKafka, createPublisher, kafkaMetrics, on, startConsumer } from '../runtime/kafka';
import { Lifecycle, exitOnSignals, runMain } from '../runtime/lifecycle';
import { createLogger, type Logger } from '../runtime/logger';
import { createMetricsRegistry } from '../runtime/metrics';
import { createRedis } from '../runtime/redis';
import { topicNames } from '../topics/names';
import { gatewayResult, type GatewayRule } from '../topics/schemas';
import { paymentRoutes } from './api/payments';
import { loadOrchestratorConfig, type OrchestratorConfig } from './config';
import { createAcceptPayment } from './dispatch/accept';
import { createEffectRunner } from './dispatch/effects';
import { createOrchestratorMetrics } from './metrics';
import { createOutcomeApplier } from './results/apply-outcome';
import { handleGatewayResult } from './results/consumer';
import { createRouter } from './routing/router';
import { readRulesFile, staticRuleBook } from './routing/rules';
import { createPaymentStore } from './state/store';
import { startTimeoutScheduler } from './timeouts/scheduler';

/** What can be swapped in tests; production uses the defaults. */
export interface OrchestratorOverrides {
  rules?: GatewayRule[];
  random?: () => number;
  clock?: () => Date;
  logger?: Logger;
}

export interface RunningOrchestrator {
  port: number;
  stop: () => Promise<void>;
}

/** The composition root: builds every part with its dependencies and starts them in order. */
export async function startOrchestrator(config: OrchestratorConfig, overrides: OrchestratorOverrides = {}): Promise<RunningOrchestrator> {
  const logger = overrides.logger ?? createLogger('orchestrator', config.LOG_LEVEL, config.INSTANCE_ID);
  const clock = overrides.clock ?? (() => new Date());
  const random = overrides.random ?? Math.random;
  const lifecycle = new Lifecycle(logger);
  const registry = createMetricsRegistry('orchestrator');
  const metrics = createOrchestratorMetrics(registry);
  const topics = topicNames(config.TOPIC_PREFIX);

  try {
    const redis = createRedis(config.REDIS_URL, config.REDIS_KEY_PREFIX, logger);
    await redis.connect();
    lifecycle.add('redis', async () => {
      await redis.quit();
    });

    const kafka = createKafka(config.KAFKA_BROKERS, `orchestrator-${config.INSTANCE_ID}`, logger);
    const kafkaCounters = kafkaMetrics(registry);
    const publisher = await createPublisher(kafka, kafkaCounters);
    lifecycle.add('kafka producer', () => publisher.producer.disconnect());

    const ruleBook = staticRuleBook(overrides.rules ?? readRulesFile(config.GATEWAY_RULES_FILE));
    const router = createRouter(ruleBook, random);
    const store = createPaymentStore(redis, config.IDEMPOTENCY_TTL_SECONDS);
    const runEffects = createEffectRunner({ publisher, topics, logger, metrics, clock });
    const applyOutcome = createOutcomeApplier({
      store,
      runEffects,
      metrics,
      logger,
      decisionContext: {
        maxAttempts: config.MAX_ATTEMPTS,
        newAttemptId: randomUUID,
        timeoutMsOf: router.timeoutMsOf,
        route: router.route,
      },
    });
    const acceptPayment = createAcceptPayment({ store, router, runEffects, clock, newId: randomUUID, metrics, logger });

    const stopTimeouts = startTimeoutScheduler({ store, applyOutcome, clock, logger, pollMs: config.TIMEOUT_POLL_MS });
    lifecycle.add('timeout scheduler', stopTimeouts);

    const { consumer, joined, isHealthy } = await startConsumer({
      kafka,
      groupId: `${config.TOPIC_PREFIX}orchestrator`,
      handlers: [on(topics.gatewayResults, gatewayResult, handleGatewayResult(applyOutcome, clock))],
      publisher,
      deadLetterTopic: topics.deadLetter,
      metrics: kafkaCounters,
      logger,
      partitionsConsumedConcurrently: 6,
    });
    lifecycle.add('results consumer', () => consumer.disconnect());
    await joined;

    const app = createHttpApp(
      { logger, registry, isReady: () => redis.status === 'ready' && isHealthy(), isDraining: () => lifecycle.isStopping },
      (routes) => paymentRoutes(routes, { acceptPayment, store }),
    );
    const server = await listen(app, config.PORT);
    // Registered last so it stops first: no new HTTP work while the rest drains.
    lifecycle.add('http server', server.close);
    logger.info({ port: server.port, topics: topics.gatewayResults }, 'orchestrator started');
    return { port: server.port, stop: () => lifecycle.stop() };
  } catch (error) {
    await lifecycle.stop();
    throw error;
  }
}

if (require.main === module) {
  runMain(async () => {
    const config = loadOrchestratorConfig(process.env);
    const logger = createLogger('orchestrator', config.LOG_LEVEL, config.INSTANCE_ID);
    const running = await startOrchestrator(config, { logger });
    exitOnSignals(running, logger, config.SHUTDOWN_GRACE_MS);
  });
}
