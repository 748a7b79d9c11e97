import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { loadBackofficeConfig } from '../backoffice/config';
import { startBackoffice } from '../backoffice/main';
import { loadAlertReceiverConfig } from '../grafana/alert-receiver/config';
import { startAlertReceiver, WEBHOOK_PATH } from '../grafana/alert-receiver/main';
import {
  ALERTMANAGER_BIN,
  ALERTS_TEST_YML,
  ALERTS_YML,
  localAlertmanagerConfig,
  localPrometheusConfig,
  OPS_PACKAGES,
  PROMETHEUS_BIN,
  PROMTOOL_BIN,
  startAlertmanager,
  startPrometheus,
  type RunningTool,
  type Target,
} from '../grafana/prometheus/local';
import type { RunningService } from '../runtime/lifecycle';
import { freePort } from '../scripts/processes';
import { ensureDebianPackages } from './support/debian';
import { asService, testLogger } from './support/env';
import { pollUntil } from './support/poll';
import { committedAlertRules, panelQueries, prometheusApi, variableQueries } from './support/prometheus';
import { vectorSelectors } from './support/promql';
import { deposit, postPayment, rule, startTestStack, type TestStack } from './support/stack';

/**
 * Prometheus (Debian's package, installed by scripts/debian-install.sh if
 * missing) scrapes a whole stack in this process under a short mixed load,
 * with the committed prometheus.yml and alerts.yml: only the targets and the
 * intervals (1 s) are local. Then:
 * - promtool checks the configuration and the rules, and runs the rules' unit tests;
 * - every dashboard panel query parses and returns data over the load;
 * - every metric a panel or rule reads is one the services export;
 * - every alert rule evaluates, and each of its selectors returns data: the
 *   rules are meant to be empty while healthy, so their inputs are what is
 *   checked, with their label matchers;
 * - stopping a gateway opens its breaker and fires GatewayBreakerOpen (no
 *   `for`, as committed), which goes through Alertmanager (group_wait cut to
 *   1 s) and the alert receiver to a webhook; its ServiceDown (`for: 1m`, as
 *   committed) is at least pending.
 */
const SCRAPE_SECONDS = 1;
/** Grafana's $__rate_interval: four scrape intervals (plus one, for a sample at each end). */
const RATE_WINDOW = `${5 * SCRAPE_SECONDS}s`;
const EU_ONLY = 'alpha';
const BOTH = 'beta';
const STOPPED = 'gamma';
/** Long enough that only the stopped gateway times out much, even on a loaded machine. */
const ATTEMPT_TIMEOUT_MS = 1_500;
/** Payments per second during the load; each phase sends a bounded number. */
const LOAD_INTERVAL_MS = 60;

const run = promisify(execFile);
const seconds = () => Date.now() / 1000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const until = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> =>
  pollUntil(probe, (found): found is T => found !== undefined, timeoutMs, () => `${what}: not seen within ${timeoutMs} ms`, 250);

/** A webhook that refuses its first post (so the receiver's retry is exercised) and keeps the rest. */
function startWebhook(): Promise<{ url: string; bodies: unknown[]; refused: number; close: () => Promise<void> }> {
  const state = { bodies: [] as unknown[], refused: 0 };
  const server: Server = createServer((req, res) => {
    let text = '';
    req.on('data', (chunk: Buffer) => (text += chunk.toString()));
    req.on('end', () => {
      if (state.refused === 0) {
        state.refused += 1;
        res.writeHead(503).end();
        return;
      }
      state.bodies.push(JSON.parse(text));
      res.writeHead(204).end();
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      resolve({
        url: `http://127.0.0.1:${port}/hook`,
        get bodies() {
          return state.bodies;
        },
        get refused() {
          return state.refused;
        },
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    }),
  );
}

describe('dashboards and alert rules on a real Prometheus', () => {
  let stack: TestStack;
  let backoffice: RunningService;
  let receiver: RunningService;
  let webhook: Awaited<ReturnType<typeof startWebhook>>;
  let prometheus: RunningTool;
  let alertmanager: RunningTool;
  let dir: string;
  let loadStarted: number;
  let api: ReturnType<typeof prometheusApi>;
  const sent: Array<Promise<unknown>> = [];

  /** Sends `count` payments, one every LOAD_INTERVAL_MS, without waiting for the answers. */
  async function load(count: number, payment: (index: number) => Record<string, unknown>): Promise<void> {
    for (let index = 0; index < count; index += 1) {
      sent.push(postPayment(stack.baseUrl, payment(index)).catch(() => undefined));
      await sleep(LOAD_INTERVAL_MS);
    }
  }

  beforeAll(async () => {
    await ensureDebianPackages(OPS_PACKAGES, [PROMETHEUS_BIN, PROMTOOL_BIN, ALERTMANAGER_BIN]);
    dir = mkdtempSync(path.join(tmpdir(), 'pgo-prometheus-'));
    const timeouts = { timeoutMs: ATTEMPT_TIMEOUT_MS };
    stack = await startTestStack({
      rules: [
        rule(EU_ONLY, { ...timeouts, weight: 2 }),
        rule(BOTH, { ...timeouts, regions: ['EU', 'US'], rateLimitPerSecond: 8 }),
        rule(STOPPED, { ...timeouts, regions: ['US'] }),
      ],
      sandboxes: {
        // Some answers come after the timeout: failovers, then late successes and compensations.
        [EU_ONLY]: { mode: 'late', rate: 0.15, lateMs: 2_500, latencyMs: 10 },
        // Some retryable failures: failovers.
        [BOTH]: { mode: 'error', rate: 0.15, latencyMs: 10 },
        // Some final declines, until it is stopped.
        [STOPPED]: { mode: 'decline', rate: 0.3, latencyMs: 10 },
      },
    });
    backoffice = await startBackoffice(loadBackofficeConfig(asService(stack.env, 'backoffice')), { logger: testLogger('backoffice') });
    webhook = await startWebhook();
    receiver = await startAlertReceiver(
      loadAlertReceiverConfig({ PORT: '0', FORWARD_WEBHOOK_URL: webhook.url, FORWARD_RETRY_DELAY_MS: '100', RUNBOOK_BASE_URL: 'https://runbooks.test/pgo' }),
      { logger: testLogger('alert-receiver') },
    );

    const local = (port: number, labels: Record<string, string>): Target => ({ address: `127.0.0.1:${port}`, labels });
    const [prometheusPort, alertmanagerPort] = [await freePort(), await freePort()];
    alertmanager = await startAlertmanager({ config: localAlertmanagerConfig(`http://127.0.0.1:${receiver.port}${WEBHOOK_PATH}`, '1s'), dir, port: alertmanagerPort });
    prometheus = await startPrometheus({
      dir,
      port: prometheusPort,
      config: localPrometheusConfig({
        intervalSeconds: SCRAPE_SECONDS,
        alertmanagers: [`127.0.0.1:${alertmanagerPort}`],
        targets: {
          orchestrator: [local(stack.orchestrator.port, { service: 'orchestrator' })],
          backoffice: [local(backoffice.port, { service: 'backoffice' })],
          gateway: [...stack.gateways].map(([id, gateway]) => local(gateway.port, { service: `gateway-${id}`, gateway: id })),
          'alert-receiver': [local(receiver.port, { service: 'alert-receiver' })],
        },
      }),
    });
    api = prometheusApi(prometheus.url);
    loadStarted = seconds();

    // Phase 1: every gateway up; deposits and withdrawals in both regions, a
    // region nobody serves (refused), and one message that is not JSON.
    const producer = stack.kafka.producer();
    await producer.connect();
    await producer.send({ topic: stack.topics.gatewayResults, messages: [{ key: 'not-a-payment', value: 'not json' }] });
    await producer.disconnect();
    await load(120, (index) =>
      deposit({
        type: index % 3 === 0 ? 'withdrawal' : 'deposit',
        region: index % 2 === 0 ? 'EU' : 'US',
        currency: index % 2 === 0 ? 'EUR' : 'USD',
        ...(index % 40 === 39 ? { region: 'ZZ' } : {}),
      }),
    );

    // Phase 2: gamma stops. Its attempts time out (breaker), its withdrawals'
    // cancels go unanswered (review), and Prometheus cannot scrape it.
    await stack.gateways.get(STOPPED)?.stop();
    await load(100, (index) => deposit({ type: index % 2 === 0 ? 'withdrawal' : 'deposit', region: 'US', currency: 'USD' }));
  }, 180_000);

  afterAll(async () => {
    await Promise.all(sent);
    await prometheus?.stop();
    await alertmanager?.stop();
    await receiver?.stop();
    await webhook?.close();
    await backoffice?.stop();
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('When promtool checks them, then the configuration, the rules and the rules’ unit tests pass', async () => {
    const prometheusYml = path.join(dir, 'prometheus.yml');
    await expect(run(PROMTOOL_BIN, ['check', 'config', prometheusYml])).resolves.toMatchObject({ stdout: expect.stringMatching(/SUCCESS/) });
    await expect(run(PROMTOOL_BIN, ['check', 'rules', ALERTS_YML])).resolves.toMatchObject({ stdout: expect.stringMatching(/SUCCESS: \d+ rules found/) });
    await expect(run(PROMTOOL_BIN, ['test', 'rules', ALERTS_TEST_YML])).resolves.toMatchObject({ stdout: expect.stringMatching(/SUCCESS/) });
  });

  it('When a gateway is stopped under load, then GatewayBreakerOpen fires for it, reaches the webhook through Alertmanager and the receiver, and its ServiceDown is pending', async () => {
    const firing = await until(
      'GatewayBreakerOpen firing for gamma',
      async () => (await api.alerts()).find((alert) => alert.labels.alertname === 'GatewayBreakerOpen' && alert.labels.gateway === STOPPED && alert.state === 'firing'),
      20_000,
    );
    expect(firing.labels).toMatchObject({ severity: 'page' });
    const down = (await api.alerts()).find((alert) => alert.labels.alertname === 'ServiceDown' && alert.labels.gateway === STOPPED);
    expect(down?.state).toMatch(/^(pending|firing)$/);

    const forwarded = await until(
      'the forwarded notification',
      async () =>
        (webhook.bodies as Array<{ text: string; alerts: Array<{ alertname: string; labels: Record<string, string> }> }>).find((body) =>
          body.text.includes(`GatewayBreakerOpen (gateway=${STOPPED})`),
        ),
      15_000,
    );
    expect(webhook.refused).toBe(1);
    expect(forwarded.text).toContain('[FIRING] GatewayBreakerOpen (gateway=gamma) page: Gateway gamma: circuit breaker open Runbook: https://runbooks.test/pgo/docs/runbook.md#gatewaybreakeropen');
    expect(forwarded.alerts).toEqual([expect.objectContaining({ alertname: 'GatewayBreakerOpen', labels: { gateway: STOPPED } })]);
    const metrics = await (await fetch(`http://127.0.0.1:${receiver.port}/metrics`)).text();
    expect(metrics).toMatch(/^alerts_received_total\{alertname="GatewayBreakerOpen",status="firing",severity="page",service="alert-receiver"\} [1-9]/m);
    expect(metrics).toMatch(/^alert_notifications_forwarded_total\{result="sent",service="alert-receiver"\} [1-9]/m);
  }, 45_000);

  it('When every dashboard panel query runs over the load, then each parses and returns data', async () => {
    // The last alert test waited for the breaker; one more scrape and evaluation for what happened since.
    await sleep(2 * SCRAPE_SECONDS * 1000);
    const empty: string[] = [];
    for (const { where, expr } of panelQueries(RATE_WINDOW)) {
      const series = await api.range(expr, loadStarted, seconds());
      const hasNumber = series.some(({ values }) => values.some(([, value]) => Number.isFinite(Number(value))));
      if (!hasNumber) empty.push(`${where}: ${expr}`);
    }
    expect(empty).toEqual([]);
    for (const query of variableQueries()) {
      const [, metric = '', label = ''] = /^label_values\((\w+), (\w+)\)$/.exec(query) ?? [];
      expect(await api.labelValues(label, metric)).toEqual([EU_ONLY, BOTH, STOPPED].sort());
    }
  }, 30_000);

  it('When the load has run, then it produced each kind of event the dashboards show, not only zeros', async () => {
    const total = async (query: string) => Number((await api.instant(query))[0]?.value[1] ?? 0);
    const events = {
      failovers: await total('sum(payment_failovers_total)'),
      timeouts: await total('sum(payment_attempt_outcomes_total{outcome="timeout"})'),
      declines: await total('sum(payment_attempt_outcomes_total{outcome="final"})'),
      lateSuccesses: await total('sum(payment_late_successes_total)'),
      pendingReview: await total('max(payments_pending_review)'),
      deadLetters: await total('sum(kafka_messages_dead_lettered_total)'),
      refused: await total('sum(payments_rejected_total)'),
    };
    expect(Object.entries(events).filter(([, count]) => !(count > 0))).toEqual([]);
  });

  it('When the alert rules are evaluated, then each runs, and every selector it reads returns data with its label matchers', async () => {
    const rules = committedAlertRules();
    expect(rules.length).toBeGreaterThan(0);
    const empty: string[] = [];
    for (const rule of rules) {
      await api.instant(rule.expr);
      for (const { selector } of vectorSelectors(rule.expr)) {
        if ((await api.instant(selector)).length === 0) empty.push(`${rule.alert}: ${selector}`);
      }
    }
    expect(empty).toEqual([]);
  });

  it('When panels and rules name metrics, then every one is exported by a service (or is Prometheus’ own `up`)', async () => {
    const exported = new Set(await api.metricNames());
    const read = [...panelQueries(RATE_WINDOW).map(({ expr }) => expr), ...committedAlertRules().map((rule) => rule.expr)].flatMap((expr) =>
      vectorSelectors(expr).map(({ metric }) => metric),
    );
    expect(read.length).toBeGreaterThan(0);
    expect([...new Set(read)].filter((metric) => !exported.has(metric))).toEqual([]);
  });
});
