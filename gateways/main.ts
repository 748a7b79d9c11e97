import type { Express } from 'express';
import { createHttpApp, listen, parseOr400 } from '../runtime/http';
import { connectKafka, kafkaConnectionOf, on, startConsumer } from '../runtime/kafka';
import { Lifecycle, exitOnSignals, runMain, type RunningService } from '../runtime/lifecycle';
import { createLogger, type Logger } from '../runtime/logger';
import { createMetricsRegistry } from '../runtime/metrics';
import { topicNames } from '../topics/names';
import { gatewayRequestMessage } from '../topics/schemas';
import { loadGatewayConfig, type GatewayConfig } from './config';
import { abortableSleep, createSandboxAdapter, sandboxSettings, type SandboxAdapter } from './sandbox';
import { createGatewayWorker } from './worker';

export interface RunningGateway extends RunningService {
  sandbox: SandboxAdapter;
}

/**
 * The chaos controls: GET shows the current settings; PUT replaces them
 * whole (a field left out takes its default, so `{}` means healthy) and
 * answers 400 naming the first field at fault, an unknown field included.
 */
function sandboxRoutes(app: Express, sandbox: SandboxAdapter, logger: Logger): void {
  app.get('/sandbox', (_req, res) => {
    res.json(sandbox.settings());
  });
  app.put('/sandbox', (req, res) => {
    const settings = parseOr400(sandboxSettings, req.body ?? {});
    sandbox.configure(settings);
    logger.warn({ sandbox: settings }, 'sandbox behaviour changed');
    res.json(settings);
  });
}

/** The composition root of one gateway worker with the sandbox adapter. */
export async function startGateway(
  config: GatewayConfig,
  overrides: { random?: () => number; clock?: () => Date; logger?: Logger } = {},
): Promise<RunningGateway> {
  const logger = overrides.logger ?? createLogger('gateway', config.LOG_LEVEL, config.GATEWAY_ID);
  const lifecycle = new Lifecycle(logger);
  const registry = createMetricsRegistry(`gateway-${config.GATEWAY_ID}`);
  const topics = topicNames(config.TOPIC_PREFIX);
  const clock = overrides.clock ?? (() => new Date());
  const sandbox = createSandboxAdapter(
    {
      mode: config.SANDBOX_MODE,
      latencyMs: config.SANDBOX_LATENCY_MS,
      rate: config.SANDBOX_RATE,
      periodMs: config.SANDBOX_PERIOD_MS,
      lateMs: config.SANDBOX_LATE_MS,
    },
    { random: overrides.random ?? Math.random, clock, sleep: abortableSleep, memory: config.SANDBOX_ATTEMPT_MEMORY },
  );
  try {
    const { kafka, publisher, metrics: counters } = await connectKafka({
      connection: kafkaConnectionOf(config),
      clientId: `gateway-${config.GATEWAY_ID}`,
      deadLetterTopic: topics.deadLetter,
      logger,
      registry,
      lifecycle,
    });

    const worker = createGatewayWorker({
      gatewayId: config.GATEWAY_ID,
      adapter: sandbox,
      publisher,
      topics,
      clock,
      logger,
      registry,
      drainGraceMs: config.DRAIN_GRACE_MS,
    });
    lifecycle.add('in-flight attempts', () => worker.drain());
    const { consumer, joined, isHealthy } = await startConsumer({
      kafka,
      groupId: `${config.TOPIC_PREFIX}gateway-${config.GATEWAY_ID}`,
      handlers: [on(topics.gatewayRequests(config.GATEWAY_ID), gatewayRequestMessage, (message, meta) => worker.handle(message, meta.timestampMs))],
      publisher,
      deadLetterTopic: topics.deadLetter,
      metrics: counters,
      logger,
      // Requests of different payments in one fetched batch are taken at once, so their answers leave together.
      keysConcurrently: 64,
      // Offsets committed once a second, not per batch: a third fewer requests per attempt (docs/benchmarks/
      // efficiency.md). A worker that dies gets up to a second of requests again; gateways de-duplicate on
      // the attempt id (docs/topics.md), the sandbox included.
      commitIntervalMs: 1_000,
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
