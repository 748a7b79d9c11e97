import { setTimeout as sleep } from 'node:timers/promises';
import type { Express } from 'express';
import { AppError } from '../runtime/errors';
import { createHttpApp, listen } from '../runtime/http';
import { createKafka, createPublisher, kafkaMetrics, on, startConsumer } from '../runtime/kafka';
import { Lifecycle, exitOnSignals, runMain } from '../runtime/lifecycle';
import { createLogger, type Logger } from '../runtime/logger';
import { createMetricsRegistry } from '../runtime/metrics';
import { topicNames } from '../topics/names';
import { gatewayRequestMessage } from '../topics/schemas';
import { loadGatewayConfig, type GatewayConfig } from './config';
import { createSandboxAdapter, sandboxSettings, type SandboxAdapter } from './sandbox';
import { createGatewayWorker } from './worker';

export interface RunningGateway {
  port: number;
  sandbox: SandboxAdapter;
  stop: () => Promise<void>;
}

function sandboxRoutes(app: Express, sandbox: SandboxAdapter, logger: Logger): void {
  app.get('/sandbox', (_req, res) => {
    res.json(sandbox.settings());
  });
  app.put('/sandbox', (req, res) => {
    const parsed = sandboxSettings.safeParse(req.body ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = issue?.path.join('.') || 'body';
      throw new AppError(400, 'invalid_request', `${field}: ${issue?.message ?? 'invalid'}`, field);
    }
    sandbox.configure(parsed.data);
    logger.warn({ sandbox: parsed.data }, 'sandbox behaviour changed');
    res.json(parsed.data);
  });
}

/** The composition root of one gateway worker with the sandbox adapter. */
export async function startGateway(config: GatewayConfig, overrides: { random?: () => number; logger?: Logger } = {}): Promise<RunningGateway> {
  const logger = overrides.logger ?? createLogger('gateway', config.LOG_LEVEL, config.GATEWAY_ID);
  const lifecycle = new Lifecycle(logger);
  const registry = createMetricsRegistry(`gateway-${config.GATEWAY_ID}`);
  const topics = topicNames(config.TOPIC_PREFIX);
  const sandbox = createSandboxAdapter(
    { mode: config.SANDBOX_MODE, latencyMs: config.SANDBOX_LATENCY_MS, rate: config.SANDBOX_RATE },
    { random: overrides.random ?? Math.random, sleep: (ms) => sleep(ms) },
  );
  try {
    const kafka = createKafka(config.KAFKA_BROKERS, `gateway-${config.GATEWAY_ID}`, logger);
    const counters = kafkaMetrics(registry);
    const publisher = await createPublisher(kafka, counters);
    lifecycle.add('kafka producer', () => publisher.producer.disconnect());

    const worker = createGatewayWorker({ gatewayId: config.GATEWAY_ID, adapter: sandbox, publisher, topics, clock: () => new Date(), logger, registry });
    lifecycle.add('in-flight attempts', () => worker.drain());
    const { consumer, joined, isHealthy } = await startConsumer({
      kafka,
      groupId: `${config.TOPIC_PREFIX}gateway-${config.GATEWAY_ID}`,
      handlers: [on(topics.gatewayRequests(config.GATEWAY_ID), gatewayRequestMessage, (message) => worker.handle(message))],
      publisher,
      deadLetterTopic: topics.deadLetter,
      metrics: counters,
      logger,
    });
    lifecycle.add('requests consumer', () => consumer.disconnect());
    await joined;

    const app = createHttpApp(
      { logger, registry, isReady: isHealthy, isDraining: () => lifecycle.isStopping },
      (routes) => sandboxRoutes(routes, sandbox, logger),
    );
    const server = await listen(app, config.PORT);
    lifecycle.add('http server', server.close);
    logger.info({ port: server.port, gatewayId: config.GATEWAY_ID, sandbox: sandbox.settings() }, 'gateway started');
    return { port: server.port, sandbox, stop: () => lifecycle.stop() };
  } catch (error) {
    await lifecycle.stop();
    throw error;
  }
}

if (require.main === module) {
  runMain(async () => {
    const config = loadGatewayConfig(process.env);
    const logger = createLogger('gateway', config.LOG_LEVEL, config.GATEWAY_ID);
    const running = await startGateway(config, { logger });
    exitOnSignals(running, logger, config.SHUTDOWN_GRACE_MS);
  });
}
