import { randomUUID } from 'node:crypto';
import { createTokenVerifier, requireScope } from '../runtime/auth';
import { Counter } from 'prom-client';
import { SIGNATURE_HEADER, ruleSignatureCheck, signMessage, signatureCheck } from '../runtime/signing';
import type { ParkedLedger } from '../runtime/compacted';
import { followCompactedTopic } from '../runtime/compacted';
import { createHttpApp, listen } from '../runtime/http';
import { connectKafka, kafkaConnectionOf, on, RejectMessage, startConsumer } from '../runtime/kafka';
import { Lifecycle, exitOnSignals, runMain, type RunningService } from '../runtime/lifecycle';
import { createLogger, type Logger } from '../runtime/logger';
import { createMetricsRegistry } from '../runtime/metrics';
import { createRedis } from '../runtime/redis';
import { topicNames } from '../topics/names';
import { gatewayHealthChanged, resultMessage, reviewResolved, ruleEvent, type GatewayHealthChanged } from '../topics/schemas';
import { openApiRoutes } from './api/openapi';
import { paymentRoutes } from './api/payments';
import { admissionGate } from './api/admission-gate';
import { createTerminalWaits } from './api/terminal-waits';
import { loadOrchestratorConfig, type OrchestratorConfig } from './config';
import { createAcceptPayment } from './dispatch/accept';
import { createEffects, withAttemptEvents } from './dispatch/effects';
import { createOutboxSender } from './dispatch/outbox';
import { createGatewayHealth } from './health/gateway-health';
import { createOrchestratorMetrics, registerGatewayGauges, registerStateGauges } from './metrics';
import { createOutcomeApplier } from './results/apply-outcome';
import { createAttemptStats } from './health/attempt-stats';
import { startStatsReporter } from './health/stats-reporter';
import { handleResultMessage, handleUnreadableResult } from './results/consumer';
import { handleReviewResolution } from './reviews/consumer';
import { createRateLimiter } from './routing/rate-limit';
import { createRouter } from './routing/router';
import { createRuleBook } from './routing/rules';
import { unboundedCurrencies } from './routing/select';
import { createPaymentStore } from './state/store';
import { startTimeoutScheduler } from './timeouts/scheduler';
import { createResultsReadProgress } from './timeouts/read-progress';
import { resultsPartitioner } from './timeouts/results-partitions';
import { createAdmission } from './admission/admission';

/** Results of one fetched batch (one partition) applied at once, for different payments; measured in docs/benchmarks/efficiency.md. */
const RESULTS_APPLIED_CONCURRENTLY = 64;
/**
 * How often (ms) the results consumer commits the offsets it applied, instead of after every fetched batch: flat out
 * that was about one OffsetCommit request per nine payments, more than the orchestrator's produce and fetch requests
 * together (docs/benchmarks/efficiency.md, session 10). A redelivered result changes nothing (`decide` is idempotent),
 * so an instance that dies or loses a partition hands over at most this long of results to be applied again. Timeouts
 * do not wait on commits: the owner's own position is evidence that a partition was read (docs/decisions/0015).
 */
const RESULTS_COMMIT_INTERVAL_MS = 200;

/** What can be swapped in tests; production uses the defaults. */
export interface OrchestratorOverrides {
  random?: () => number;
  clock?: () => Date;
  logger?: Logger;
}

export type RunningOrchestrator = RunningService;

/** The composition root: builds every part with its dependencies and starts them in order. */
export async function startOrchestrator(config: OrchestratorConfig, overrides: OrchestratorOverrides = {}): Promise<RunningOrchestrator> {
  const logger = overrides.logger ?? createLogger('orchestrator', config.LOG_LEVEL, config.INSTANCE_ID);
  const clock = overrides.clock ?? (() => new Date());
  const random = overrides.random ?? Math.random;
  const lifecycle = new Lifecycle(logger);
  const registry = createMetricsRegistry('orchestrator');
  const ruleBook = createRuleBook();
  const metrics = createOrchestratorMetrics(registry, () => ruleBook.rules().map((rule) => rule.gatewayId));
  const topics = topicNames(config.TOPIC_PREFIX);

  try {
    const redis = createRedis(config.REDIS_URL, config.REDIS_KEY_PREFIX, logger, registry);
    await redis.connect();
    lifecycle.add('redis', async () => {
      await redis.quit();
    });

    const { publisher, consumerDeps: follow } = await connectKafka({
      connection: kafkaConnectionOf(config),
      clientId: `orchestrator-${config.INSTANCE_ID}`,
      deadLetterTopic: topics.deadLetter,
      logger,
      registry,
      lifecycle,
    });

    // Control-plane messages refused (forged, replayed, moved to another key, bare tombstones), on every instance
    // that reads them; each is parked once for all instances and restarts (the ledger in Redis, ADR 0016).
    const controlRefused = new Counter({
      name: 'orchestrator_control_events_refused_total',
      help: 'Rule and health events refused: bad signature, stale version, wrong key, bare tombstone',
      labelNames: ['topic', 'reason'],
      registers: [registry],
    });
    const parkedKey = `parked:${topics.deadLetter}`;
    const parked: ParkedLedger = {
      claim: async (source) => (await redis.hsetnx(parkedKey, source, clock().toISOString())) === 1,
      release: async (source) => {
        await redis.hdel(parkedKey, source);
      },
    };
    const rules = await followCompactedTopic({
      ...follow,
      topic: topics.rules,
      schema: ruleEvent,
      name: `${config.TOPIC_PREFIX}orchestrator-rules`,
      // Only the back office (holding the signing key) may steer routing; a removal is a signed event, never a bare null.
      authenticate: ruleSignatureCheck(config.RULES_SIGNING_KEY),
      tombstones: 'refuse',
      parked,
      onRefused: (reason) => controlRefused.inc({ topic: 'rules', reason }),
      apply: (gatewayId, event, offset) => {
        if (event === null) throw new RejectMessage('bare-tombstone', `rule tombstone for ${gatewayId} at offset ${offset}`);
        const refusal = ruleBook.apply(gatewayId, event, offset);
        if (refusal?.refused === 'stale-version') {
          logger.critical({ gatewayId, version: event.version, held: refusal.held, offset }, 'rule event refused: its version does not move the gateway forward (a replay)');
          throw new RejectMessage('stale-version', `rule ${gatewayId} version ${event.version} at offset ${offset}; version ${refusal.held} is in force`);
        }
        if (refusal?.refused === 'wrong-key') {
          logger.critical({ gatewayId, names: refusal.names, offset }, 'rule event refused: published under another gateway key');
          throw new RejectMessage('wrong-key', `a rule for ${refusal.names} under key ${gatewayId} at offset ${offset}`);
        }
        logger.info(
          { gatewayId, type: event.type, rule: event.type === 'rule.changed' ? event.rule : null, version: event.version, changedBy: event.changedBy, offset },
          'routing rule applied',
        );
        const unbounded = event.type === 'rule.changed' ? unboundedCurrencies(event.rule) : [];
        if (unbounded.length > 0) {
          logger.warn({ gatewayId, currencies: unbounded, version: event.version, offset }, 'routing rule serves currencies without an amount bound: they are not routed to it (no-amount-bound)');
        }
      },
    });
    lifecycle.add('rules follower', () => rules.consumer.disconnect());

    // Breaker states are signed by the instances (HEALTH_SIGNING_KEY) and expire: history on the compacted topic
    // does not steer a new instance, and nobody else can open or close a breaker.
    const publishHealth = (gatewayId: string, breaker: GatewayHealthChanged['breaker']) => {
      const now = clock();
      const event: GatewayHealthChanged = {
        eventId: randomUUID(),
        type: 'gateway.health',
        occurredAt: now.toISOString(),
        schemaVersion: 1,
        gatewayId,
        breaker,
        reportedBy: config.INSTANCE_ID,
        expiresAt: new Date(now.getTime() + config.HEALTH_STATE_TTL_MS).toISOString(),
      };
      const signature = signMessage(config.HEALTH_SIGNING_KEY, gatewayId, JSON.stringify(event));
      publisher.publish(topics.gatewayHealth, [{ key: gatewayId, value: event, headers: { [SIGNATURE_HEADER]: signature } }]).catch((error: unknown) => {
        logger.error({ err: error, gatewayId, breaker }, 'could not publish breaker state');
      });
    };
    // One health model per gateway: breaker, consecutive-failure ejection and weights (health/gateway-health.ts).
    const gatewayHealth = createGatewayHealth(
      {
        breaker: {
          errorThresholdPercentage: config.BREAKER_ERROR_THRESHOLD_PERCENT,
          volumeThreshold: config.BREAKER_VOLUME_THRESHOLD,
          rollingWindowMs: config.BREAKER_WINDOW_MS,
          resetTimeoutMs: config.BREAKER_RESET_TIMEOUT_MS,
        },
        outlier: {
          consecutiveFailures: config.OUTLIER_CONSECUTIVE_FAILURES,
          maxEjectionMs: config.OUTLIER_MAX_EJECTION_MS,
          maxEjectionPercent: config.OUTLIER_MAX_EJECTION_PERCENT,
        },
        weights: { windowOutcomes: config.HEALTH_WINDOW_OUTCOMES, floor: config.HEALTH_WEIGHT_FLOOR },
      },
      {
        onChange: (gatewayId, state, change) => {
          metrics.healthTransitions.inc({ gateway: gatewayId, state, reason: change.reason });
          publishHealth(gatewayId, state);
        },
        onEjectionSuppressed: (gatewayId) => metrics.ejectionsSuppressed.inc({ gateway: gatewayId }),
        rules: () => ruleBook.rules(),
        logger,
      },
    );
    const breakers = gatewayHealth;
    lifecycle.add('breakers', () => gatewayHealth.shutdown());
    const health = await followCompactedTopic({
      ...follow,
      topic: topics.gatewayHealth,
      schema: gatewayHealthChanged,
      name: `${config.TOPIC_PREFIX}orchestrator-health`,
      authenticate: signatureCheck(config.HEALTH_SIGNING_KEY),
      tombstones: 'refuse',
      parked,
      onRefused: (reason) => controlRefused.inc({ topic: 'health', reason }),
      apply: (gatewayId, event) => {
        if (event === null || event.reportedBy === config.INSTANCE_ID) return;
        if (event.gatewayId !== gatewayId) throw new RejectMessage('wrong-key', `a health event of ${event.gatewayId} under key ${gatewayId}`);
        // Expired history changes nothing (it is normal at start-up, so it is not parked).
        if (Date.parse(event.expiresAt) <= clock().getTime()) return;
        breakers.applyRemote(gatewayId, event.breaker, Date.parse(event.occurredAt));
      },
    });
    lifecycle.add('health follower', () => health.consumer.disconnect());

    // How many partitions the results topic has decides where each payment's answers land (results-partitions.ts).
    // Few, quick retries: the timeout sweep waits for these answers, and the next sweep asks again anyway.
    const admin = follow.kafka.admin({ retry: { retries: 2, initialRetryTime: 50, maxRetryTime: 200 } });
    await admin.connect();
    lifecycle.add('kafka admin', () => admin.disconnect());
    const resultsPartitionCount = (await admin.fetchTopicOffsets(topics.gatewayResults)).length;
    const resultsGroupId = `${config.TOPIC_PREFIX}orchestrator`;
    const progress = createResultsReadProgress({
      admin,
      groupId: resultsGroupId,
      topic: topics.gatewayResults,
      partitionCount: resultsPartitionCount,
      redis,
      clock,
      allowanceMs: config.RESULTS_READ_ALLOWANCE_MS,
      settleMs: config.RESULTS_DISRUPTION_SETTLE_MS,
      lookEveryMs: config.RESULTS_LOG_END_LOOK_MS,
      logger,
    });
    let readThrough: readonly number[] = [];
    /** Results partitions this instance reads now (its share of the consumer group); set once the consumer starts. */
    let ownedPartitions = (): readonly number[] => [];

    const healthWeights = gatewayHealth;
    const attemptStats = createAttemptStats(config.GATEWAY_STATS_WINDOW_MS);
    registerGatewayGauges(registry, { ruleBook, health: gatewayHealth });
    registerStateGauges(registry, redis, { partitionCount: resultsPartitionCount, readThrough: () => readThrough });
    const router = createRouter({
      ruleBook,
      breakers,
      healthWeights,
      rateLimiter: createRateLimiter(redis, randomUUID),
      random,
      clock,
    });
    const effects = createEffects({ topics, logger, metrics, clock });
    // Every stored change carries its attempt events (payment.attempts) in the same outbox write.
    const store = withAttemptEvents(
      createPaymentStore(redis, {
        idempotencyTtlSeconds: config.IDEMPOTENCY_TTL_SECONDS,
        outboxGraceMs: config.OUTBOX_GRACE_MS,
        clock,
        resultsPartitionOf: resultsPartitioner(resultsPartitionCount),
      }),
      effects,
    );
    const outbox = createOutboxSender(store, publisher, logger, registry);
    const applyOutcome = createOutcomeApplier({
      store,
      effects,
      outbox,
      router,
      health: gatewayHealth,
      attemptStats,
      metrics,
      logger,
      decisionContext: {
        maxAttempts: config.MAX_ATTEMPTS,
        maxCompensationTries: config.COMPENSATION_MAX_TRIES,
        newAttemptId: randomUUID,
        timeoutMsOf: router.timeoutMsOf,
        timeoutPolicyOf: router.timeoutPolicyOf,
        route: router.route,
      },
    });
    const admission = createAdmission({
      resultsBacklogMs: () => Math.max(0, ...ownedPartitions().map((partition) => progress.backlogMs(partition))),
      maxResultsBacklogMs: config.ADMISSION_MAX_RESULTS_BACKLOG_MS,
      maxEventLoopDelayMs: config.ADMISSION_MAX_EVENT_LOOP_DELAY_MS,
      sampleMs: config.ADMISSION_SAMPLE_MS,
      registry,
      logger,
    });
    lifecycle.add('admission', async () => admission.stop());
    const acceptPayment = createAcceptPayment({ store, router, effects, outbox, clock, newId: randomUUID, metrics, logger });
    lifecycle.add('outbox relay', outbox.startRelay({ pollMs: config.OUTBOX_POLL_MS, leaseMs: 10_000, clock }));

    const stopTimeouts = startTimeoutScheduler({
      store,
      applyOutcome,
      progress,
      clock,
      logger,
      partitionCount: resultsPartitionCount,
      pollMs: config.TIMEOUT_POLL_MS,
      onSweep: (sweep) => {
        readThrough = sweep.readThrough;
      },
      onTimeout: (lateMs) => metrics.deadlineLateness.observe(lateMs / 1000),
      onHeldForSend: () => metrics.deadlinesHeldForSend.inc(),
    });
    lifecycle.add('timeout scheduler', stopTimeouts);
    lifecycle.add(
      'gateway stats reporter',
      startStatsReporter({
        attemptStats,
        publisher,
        topic: topics.gatewayStats,
        instanceId: config.INSTANCE_ID,
        clock,
        newId: randomUUID,
        logger,
        intervalMs: config.GATEWAY_STATS_REPORT_MS,
      }),
    );

    const results = await startConsumer({
      ...follow,
      groupId: resultsGroupId,
      handlers: [
        on(
          topics.gatewayResults,
          resultMessage,
          handleResultMessage(applyOutcome, clock, logger),
          handleUnreadableResult(applyOutcome, topics.gatewayResults, clock, logger),
        ),
      ],
      partitionsConsumedConcurrently: 6,
      // Results of different payments in one fetched batch are applied at once: their Redis reads and writes
      // share round trips and their outboxes a produce request (one payment's results stay in order).
      keysConcurrently: RESULTS_APPLIED_CONCURRENTLY,
      commitIntervalMs: RESULTS_COMMIT_INTERVAL_MS,
      onProcessed: (processed) => progress.observe(processed),
    });
    ownedPartitions = () => results.assigned(topics.gatewayResults);
    lifecycle.add('results consumer', () => results.consumer.disconnect());

    // Operators' decisions on payments in review, signed by the back office (ADR 0018): one group, any instance.
    const reviews = await startConsumer({
      ...follow,
      groupId: `${config.TOPIC_PREFIX}orchestrator-reviews`,
      // A group that has never committed reads what was decided before it first joined: re-applying is harmless.
      fromBeginning: true,
      handlers: [
        on(
          topics.reviews,
          reviewResolved,
          handleReviewResolution({
            applyOutcome,
            signingKey: config.RULES_SIGNING_KEY,
            metrics,
            onRefused: (reason) => controlRefused.inc({ topic: 'reviews', reason }),
            clock,
            logger,
          }),
        ),
      ],
    });
    lifecycle.add('reviews consumer', () => reviews.consumer.disconnect());
    await Promise.all([results.joined, reviews.joined, rules.caughtUp, health.caughtUp]);

    const subscriber = redis.duplicate();
    lifecycle.add('redis subscriber', async () => {
      await subscriber.quit();
    });
    // Connected (and its ready check done) before any wait subscribes: a lazy connection's first command would be a
    // SUBSCRIBE, after which Redis refuses the ready check's INFO.
    await subscriber.connect();
    const terminalWaits = createTerminalWaits(subscriber, store, logger);

    const verifyToken = createTokenVerifier({ secret: config.AUTH_JWT_SECRET, issuer: config.AUTH_JWT_ISSUER });
    const app = createHttpApp(
      {
        logger,
        registry,
        beforeBody: (early) => early.post('/v1/payments', requireScope(verifyToken, 'payments:write'), admissionGate({ admission, store, metrics })),
        // Not ready either while the Redis replicas confirm no write (a failover left the primary without one): every POST would fail.
        isReady: () =>
          redis.status === 'ready' && redis.writesConfirmed() && results.isHealthy() && reviews.isHealthy() && rules.isHealthy() && health.isHealthy(),
        isDraining: () => lifecycle.isStopping,
      },
      (routes) => {
        openApiRoutes(routes);
        paymentRoutes(routes, {
          acceptPayment,
          store,
          terminalWaits,
          verifyToken,
          maxWaitSeconds: config.PREFER_WAIT_MAX_SECONDS,
          routing: () => ({
            instance: config.INSTANCE_ID,
            rulesVersion: ruleBook.version(),
            gateways: ruleBook.rules().map((rule) => ({
              ...rule,
              breaker: gatewayHealth.stateOf(rule.gatewayId),
              effectiveWeight: gatewayHealth.effectiveWeight(rule.gatewayId, rule.weight, rule.timeoutMs),
              // Why the gateway is (or is not) in selection, and what its weight is computed from.
              health: gatewayHealth.explain(rule.gatewayId, rule.timeoutMs),
            })),
          }),
        });
      },
    );
    const server = await listen(app, config.PORT);
    // Registered last so it stops first: no new HTTP work while the rest drains.
    lifecycle.add('http server', server.close);
    logger.info({ port: server.port, rulesVersion: ruleBook.version(), gateways: ruleBook.rules().map((rule) => rule.gatewayId) }, 'orchestrator started');
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
