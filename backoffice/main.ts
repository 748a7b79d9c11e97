import { randomUUID } from 'node:crypto';
import { Counter } from 'prom-client';
import { createTokenVerifier } from '../runtime/auth';
import { followCompactedTopic } from '../runtime/compacted';
import { createHttpApp, listen } from '../runtime/http';
import { connectKafka, kafkaConnectionOf } from '../runtime/kafka';
import { ruleSignatureCheck } from '../runtime/signing';
import { Lifecycle, exitOnSignals, runMain, type RunningService } from '../runtime/lifecycle';
import { createLogger, type Logger } from '../runtime/logger';
import { createMetricsRegistry } from '../runtime/metrics';
import { createRedis } from '../runtime/redis';

import { topicNames } from '../topics/names';
import { auditEntry, gatewayHealthChanged, gatewayStatsReported, ruleEvent } from '../topics/schemas';
import { backofficeRoutes } from './api/routes';
import { operatorPageRoutes } from './web/routes';
import { loadBackofficeConfig, type BackofficeConfig } from './config';
import { createAuditTrail, createHealthView, createRuleView, createSuccessRates } from './rules/view';
import { createRuleWriter } from './rules/writer';
import { createRulesReconciler, createTopicTail } from './rules/reconcile';
import { createBackofficeOutbox } from './outbox';
import { createOrchestratorClient } from './reviews/orchestrator-client';
import { createReviewResolver } from './reviews/resolve';
import { createReviewTrail, reviewRoutes } from './reviews/routes';

/** What can be swapped in tests; production uses the defaults. */
export interface BackofficeOverrides {
  clock?: () => Date;
  logger?: Logger;
  /** Tests only: runs before each outbox send and may throw (a crash between a change and its audit entry). */
  beforeSend?: (topic: string) => void;
}

export type RunningBackoffice = RunningService;

/**
 * The composition root: follows the rule, health, stats and audit topics until it
 * has caught up with them, then serves the rules API.
 */
export async function startBackoffice(config: BackofficeConfig, overrides: BackofficeOverrides = {}): Promise<RunningBackoffice> {
  const logger = overrides.logger ?? createLogger('backoffice', config.LOG_LEVEL, config.INSTANCE_ID);
  const clock = overrides.clock ?? (() => new Date());
  const lifecycle = new Lifecycle(logger);
  const registry = createMetricsRegistry('backoffice');
  const topics = topicNames(config.TOPIC_PREFIX);
  const versionConflicts = new Counter({
    name: 'backoffice_rule_version_conflicts_total',
    help: 'Rule events that did not advance their gateway version (a replay, or two writers based a change on the same version): not applied',
    registers: [registry],
  });
  const rulesRefused = new Counter({
    name: 'backoffice_rule_events_refused_total',
    help: 'Rule events refused by the back office view: bad signature, stale version, wrong key, bare tombstone',
    labelNames: ['reason'],
    registers: [registry],
  });

  try {
    // The outbox (a rule change and its audit entry, a review resolution and its audit entry) lives in Redis.
    const redis = createRedis(config.REDIS_URL, config.REDIS_KEY_PREFIX, logger, registry);
    await redis.connect();
    lifecycle.add('redis', async () => {
      await redis.quit();
    });

    const { publisher, metrics: kafkaCounters, consumerDeps: follow } = await connectKafka({
      connection: kafkaConnectionOf(config),
      clientId: `backoffice-${config.INSTANCE_ID}`,
      deadLetterTopic: topics.deadLetter,
      logger,
      registry,
      lifecycle,
    });

    const view = createRuleView();
    // The last message per key, whatever the view made of it: what the topic keeps after compaction (rules/reconcile.ts).
    const tail = createTopicTail();
    const rules = await followCompactedTopic({
      ...follow,
      topic: topics.rules,
      schema: ruleEvent,
      name: `${config.TOPIC_PREFIX}backoffice-rules`,
      // The back office's view must not show what it would not have written itself, nor fall back on a replay.
      authenticate: ruleSignatureCheck(config.RULES_SIGNING_KEY),
      tombstones: 'refuse',
      // The orchestrators park refused control-plane messages, once (ADR 0016); the back office counts and logs them.
      parked: { claim: async () => false, release: async () => undefined },
      onRefused: (reason, meta) => {
        rulesRefused.inc({ reason });
        if (meta.key !== null) tail.refused(meta.key, reason, meta.offset);
      },
      apply: (gatewayId, event, offset) => {
        if (event === null) return;
        tail.event(gatewayId, event, offset);
        const outcome = view.apply(gatewayId, event, offset);
        if (outcome === 'stale-version') versionConflicts.inc();
        if (outcome !== 'applied') {
          rulesRefused.inc({ reason: outcome });
          logger.critical({ gatewayId, version: event.version, changedBy: event.changedBy, offset, reason: outcome }, 'rule event not applied: it does not move its gateway forward (a replay or concurrent writers) or names another key');
        }
      },
    });
    lifecycle.add('rules follower', () => rules.consumer.disconnect());

    const health = createHealthView();
    const healthFollower = await followCompactedTopic({
      ...follow,
      topic: topics.gatewayHealth,
      schema: gatewayHealthChanged,
      name: `${config.TOPIC_PREFIX}backoffice-health`,
      apply: (gatewayId, event) => health.apply(gatewayId, event),
    });
    lifecycle.add('health follower', () => healthFollower.consumer.disconnect());

    const successRates = createSuccessRates(config.GATEWAY_STATS_STALE_MS);
    const statsFollower = await followCompactedTopic({
      ...follow,
      topic: topics.gatewayStats,
      schema: gatewayStatsReported,
      name: `${config.TOPIC_PREFIX}backoffice-stats`,
      apply: (instanceId, report) => successRates.apply(instanceId, report),
    });
    lifecycle.add('stats follower', () => statsFollower.consumer.disconnect());

    // Not compacted, but read the same way: from the beginning on every start, caught up before serving.
    const trail = createAuditTrail();
    const reviewTrail = createReviewTrail();
    const audit = await followCompactedTopic({
      ...follow,
      topic: topics.audit,
      schema: auditEntry,
      name: `${config.TOPIC_PREFIX}backoffice-audit`,
      apply: (_key, event) => {
        if (event === null) return;
        if (event.type === 'review.audited') {
          reviewTrail.add(event);
          return;
        }
        trail.add(event);
        view.noteVersion(event.gatewayId, event.version);
      },
    });
    lifecycle.add('audit follower', () => audit.consumer.disconnect());
    await Promise.all([rules.caughtUp, healthFollower.caughtUp, audit.caughtUp, statsFollower.caughtUp]);

    const outbox = createBackofficeOutbox({
      redis,
      producer: publisher.producer,
      kafkaMetrics: kafkaCounters,
      logger,
      clock,
      graceMs: config.OUTBOX_GRACE_MS,
      ...(overrides.beforeSend ? { beforeSend: overrides.beforeSend } : {}),
    });
    // Sends what an earlier run (or a failed send) left behind; stopped after HTTP, before the producer.
    lifecycle.add('outbox relay', outbox.startRelay({ pollMs: config.OUTBOX_POLL_MS, leaseMs: 10_000 }));
    const write = createRuleWriter({
      outbox,
      topics: { rules: topics.rules, audit: topics.audit },
      view,
      registry,
      logger,
      clock,
      newId: randomUUID,
      applyTimeoutMs: config.WRITE_APPLY_TIMEOUT_MS,
      rulesSigningKey: config.RULES_SIGNING_KEY,
    });

    // Compares the rule topic with the audit trail at start and every RULES_RECONCILE_MS (issue 12).
    const reconciler = createRulesReconciler({
      audited: () => trail.gateways(),
      tail,
      catchUp: () => rules.untilCaughtUp(config.WRITE_APPLY_TIMEOUT_MS),
      registry,
      logger,
      clock,
    });
    lifecycle.add('rule reconciliation', reconciler.start(config.RULES_RECONCILE_MS));

    const tokenSettings = { secret: config.AUTH_JWT_SECRET, issuer: config.AUTH_JWT_ISSUER };
    const verifyToken = createTokenVerifier(tokenSettings);
    const orchestrator = createOrchestratorClient({ baseUrl: config.ORCHESTRATOR_URL.replace(/\/$/, ''), tokens: tokenSettings, clock });
    const app = createHttpApp(
      {
        logger,
        registry,
        isReady: () => rules.isHealthy() && healthFollower.isHealthy() && audit.isHealthy() && statsFollower.isHealthy(),
        isDraining: () => lifecycle.isStopping,
      },
      (routes) => {
        backofficeRoutes(routes, {
          view,
          health,
          successRates,
          clock,
          trail,
          write,
          reconciler,
          verifyToken,
        });
        reviewRoutes(routes, {
          orchestrator,
          resolve: createReviewResolver({
            orchestrator,
            outbox,
            topics: { reviews: topics.reviews, audit: topics.audit },
            signingKey: config.RULES_SIGNING_KEY,
            registry,
            logger,
            clock,
            newId: randomUUID,
            applyTimeoutMs: config.REVIEW_APPLY_TIMEOUT_MS,
          }),
          trail: reviewTrail,
          verifyToken,
        });
        operatorPageRoutes(routes);
      },
    );
    const server = await listen(app, config.PORT);
    // Registered last so it stops first: no new HTTP work while the rest drains.
    lifecycle.add('http server', server.close);
    logger.info({ port: server.port, gateways: view.list().map((entry) => entry.rule.gatewayId) }, 'back office started');
    return { port: server.port, stop: () => lifecycle.stop() };
  } catch (error) {
    await lifecycle.stop();
    throw error;
  }
}

if (require.main === module) {
  runMain(async () => {
    const config = loadBackofficeConfig(process.env);
    const logger = createLogger('backoffice', config.LOG_LEVEL, config.INSTANCE_ID);
    const running = await startBackoffice(config, { logger });
    exitOnSignals(running, logger, config.SHUTDOWN_GRACE_MS);
  });
}
