// The alert receiver: Alertmanager's webhook. It logs every alert as one
// structured line, counts it, and forwards each notification to the webhook
// in FORWARD_WEBHOOK_URL (an SMS or e-mail gateway, a chat), with retries.
// See docs/decisions/0011-alert-receiver.md for why it exists and lives here.
import { setTimeout as sleep } from 'node:timers/promises';
import { Counter } from 'prom-client';
import { createHttpApp, listen, parseOr400 } from '../../runtime/http';
import { Lifecycle, exitOnSignals, runMain, type RunningService } from '../../runtime/lifecycle';
import { createLogger, type Logger } from '../../runtime/logger';
import { createMetricsRegistry } from '../../runtime/metrics';
import { alertmanagerWebhook, describeAlerts, forwardBody, forwardWithRetry } from './alerts';
import { loadAlertReceiverConfig, type AlertReceiverConfig } from './config';

export const WEBHOOK_PATH = '/v1/alertmanager';

export interface AlertReceiverOverrides {
  logger?: Logger;
  fetch?: typeof fetch;
}

export async function startAlertReceiver(config: AlertReceiverConfig, overrides: AlertReceiverOverrides = {}): Promise<RunningService> {
  const logger = overrides.logger ?? createLogger('alert-receiver', config.LOG_LEVEL);
  const lifecycle = new Lifecycle(logger);
  const registry = createMetricsRegistry('alert-receiver');
  const received = new Counter({
    name: 'alerts_received_total',
    help: 'Alerts received from Alertmanager, by alert name, status (firing, resolved) and severity',
    labelNames: ['alertname', 'status', 'severity'],
    registers: [registry],
  });
  const forwarded = new Counter({
    name: 'alert_notifications_forwarded_total',
    help: 'Notifications forwarded to FORWARD_WEBHOOK_URL, by result (sent, failed, not-configured)',
    labelNames: ['result'],
    registers: [registry],
  });
  for (const result of ['sent', 'failed', 'not-configured']) forwarded.inc({ result }, 0);

  const app = createHttpApp(
    { logger, registry, isReady: () => true, isDraining: () => lifecycle.isStopping, bodyLimit: '1mb' },
    (routes) => {
      routes.post(WEBHOOK_PATH, async (req, res) => {
        const payload = parseOr400(alertmanagerWebhook, req.body);
        const notes = describeAlerts(payload, config.RUNBOOK_BASE_URL);
        for (const note of notes) {
          received.inc({ alertname: note.alertname, status: note.status, severity: note.severity });
          const line = { alert: note, receiver: payload.receiver, groupKey: payload.groupKey };
          if (note.status === 'resolved') logger.info(line, 'alert resolved');
          else if (note.severity === 'page') logger.critical(line, 'alert firing');
          else logger.warn(line, 'alert firing');
        }
        if (!config.FORWARD_WEBHOOK_URL) {
          forwarded.inc({ result: 'not-configured' });
          res.json({ alerts: notes.length, forwarded: false });
          return;
        }
        const result = await forwardWithRetry({
          url: config.FORWARD_WEBHOOK_URL,
          body: forwardBody(payload, notes),
          attempts: config.FORWARD_ATTEMPTS,
          retryDelayMs: config.FORWARD_RETRY_DELAY_MS,
          timeoutMs: config.FORWARD_TIMEOUT_MS,
          fetch: overrides.fetch ?? fetch,
          sleep: (ms) => sleep(ms),
        });
        if (result.ok) {
          forwarded.inc({ result: 'sent' });
          res.json({ alerts: notes.length, forwarded: true });
          return;
        }
        forwarded.inc({ result: 'failed' });
        logger.error({ tries: result.tries, error: result.error, alerts: notes.map((note) => note.alertname) }, 'could not forward alert notification');
        // Alertmanager retries a notification that got a 5xx, so nobody's page is dropped here.
        res.status(502).json({ error: { code: 'forward_failed', message: `webhook did not take the notification: ${result.error}` } });
      });
    },
  );
  const server = await listen(app, config.PORT);
  lifecycle.add('http server', server.close);
  logger.info({ port: server.port, forwardsTo: config.FORWARD_WEBHOOK_URL ? new URL(config.FORWARD_WEBHOOK_URL).origin : null }, 'alert receiver started');
  return { port: server.port, stop: () => lifecycle.stop() };
}

if (require.main === module) {
  runMain(async () => {
    const config = loadAlertReceiverConfig(process.env);
    const logger = createLogger('alert-receiver', config.LOG_LEVEL);
    const running = await startAlertReceiver(config, { logger });
    exitOnSignals(running, logger, config.SHUTDOWN_GRACE_MS);
  });
}
