import type { Publisher } from '../../runtime/kafka';
import type { Logger } from '../../runtime/logger';
import { startPoller } from '../../runtime/poller';
import type { GatewayStatsReported } from '../../topics/schemas';
import type { AttemptStats } from './attempt-stats';

export interface StatsReporterDeps {
  attemptStats: Pick<AttemptStats, 'summary' | 'windowSeconds'>;
  publisher: Publisher;
  topic: string;
  instanceId: string;
  clock: () => Date;
  newId: () => string;
  logger: Logger;
  intervalMs: number;
}

/**
 * Publishes this instance's recent attempt outcomes per gateway every
 * `intervalMs`, keyed by instance id on a compacted topic: each report
 * replaces the previous one, and the back office sums the live reports of
 * every instance into the operator page's success rates. One small message
 * per interval, whatever the traffic.
 */
export function startStatsReporter(deps: StatsReporterDeps): () => Promise<void> {
  const { attemptStats, publisher, topic, instanceId, clock, newId, logger, intervalMs } = deps;
  return startPoller(
    'gateway stats reporter',
    intervalMs,
    async () => {
      const now = clock();
      const report: GatewayStatsReported = {
        eventId: newId(),
        type: 'gateway.stats',
        occurredAt: now.toISOString(),
        schemaVersion: 1,
        reportedBy: instanceId,
        windowSeconds: attemptStats.windowSeconds,
        gateways: attemptStats.summary(now.getTime()),
      };
      await publisher.publish(topic, [{ key: instanceId, value: report }]);
      logger.debug({ gateways: report.gateways.length }, 'gateway stats reported');
    },
    logger,
  );
}
