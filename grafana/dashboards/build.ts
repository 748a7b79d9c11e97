// The Grafana dashboards as code: `npm run dashboards` writes one JSON file
// per dashboard beside this script, which Grafana's provisioning loads
// (grafana/provisioning/dashboards/dashboards.yml). Edit the panels here, not
// the JSON: test/grafana.unit.test.ts fails when the two differ, and
// test/prometheus.int.test.ts runs every query against a real Prometheus.
import { writeFileSync } from 'node:fs';
import path from 'node:path';

/** The data source uid grafana/provisioning/datasources/prometheus.yml provisions. */
export const DATASOURCE = { type: 'prometheus', uid: 'prometheus' } as const;

/** Grafana's unit ids: per second, share of 1, seconds, a count, bytes. */
type Unit = 'reqps' | 'ops' | 'percentunit' | 's' | 'short' | 'bytes' | 'percent';

interface Target {
  expr: string;
  legend: string;
}

interface PanelSpec {
  title: string;
  /** What the panel shows and in which unit: Grafana shows it in the panel's (i) tooltip. */
  description: string;
  unit: Unit;
  targets: Target[];
  kind?: 'timeseries' | 'stat';
  /** Grid columns out of 24; 8 by default (three panels a row). */
  width?: number;
  /** For stat panels: value → text and colour. */
  mappings?: Array<{ value: number; text: string; color: string }>;
  stacked?: boolean;
  min?: number;
  max?: number;
}

interface RowSpec {
  title: string;
  /** The row repeats once per value of this template variable. */
  repeat?: string;
  panels: PanelSpec[];
}

interface DashboardSpec {
  uid: string;
  title: string;
  description: string;
  file: string;
  variables?: Array<{ name: string; label: string; query: string }>;
  rows: RowSpec[];
}

const PANEL_HEIGHT = 8;
const q = (expr: string, legend = ''): Target => ({ expr, legend });
/** Grafana's rate window: at least four scrape intervals. */
const R = '$__rate_interval';

const quantiles = (metric: string, by: string, filter = '') =>
  [0.5, 0.95, 0.99].map((quantile) =>
    q(`histogram_quantile(${quantile}, sum by (${by}le) (rate(${metric}_bucket${filter}[${R}])))`, `p${Math.round(quantile * 100)}`),
  );

const payments: DashboardSpec = {
  uid: 'pgo-payments',
  title: 'Payments overview',
  description: 'Throughput, success rate, end-to-end latency, failovers, timeouts and exceptions of the payment orchestrator, by type and region.',
  file: 'payments-overview.json',
  rows: [
    {
      title: 'Throughput and success',
      panels: [
        {
          title: 'Payments accepted by type',
          description: 'Payments accepted (202) per second, by type (deposit, withdrawal), summed over every orchestrator instance. Unit: payments per second.',
          unit: 'reqps',
          targets: [q(`sum by (type) (rate(payments_accepted_total[${R}]))`, '{{type}}')],
        },
        {
          title: 'Payments accepted by region',
          description: 'Payments accepted per second, by region. Unit: payments per second.',
          unit: 'reqps',
          targets: [q(`sum by (region) (rate(payments_accepted_total[${R}]))`, '{{region}}')],
        },
        {
          title: 'Success rate (last 5 minutes)',
          description: 'Share of the payments that reached a terminal status in the last 5 minutes that ended SUCCESS (a final decline counts as a failure). Unit: percent.',
          unit: 'percentunit',
          kind: 'stat',
          min: 0,
          max: 1,
          targets: [q('sum(rate(payments_completed_total{status="SUCCESS"}[5m])) / sum(rate(payments_completed_total[5m]))', 'success rate')],
        },
        {
          title: 'Payments completed by status',
          description: 'Payments that reached SUCCESS or FAILURE, per second. Unit: payments per second.',
          unit: 'reqps',
          stacked: true,
          targets: [q(`sum by (status) (rate(payments_completed_total[${R}]))`, '{{status}}')],
        },
        {
          title: 'Success rate by type and region',
          description: 'Share of completed payments that ended SUCCESS, per type and region. A line near 0 while payments flow is what the RegionNoSuccessfulPayments alert watches. Unit: percent.',
          unit: 'percentunit',
          min: 0,
          max: 1,
          targets: [
            q(
              `sum by (type, region) (rate(payments_completed_total{status="SUCCESS"}[${R}])) / sum by (type, region) (rate(payments_completed_total[${R}]))`,
              '{{type}} {{region}}',
            ),
          ],
        },
        {
          title: 'Requests refused by reason',
          description: 'Payment requests refused after validation, per second: no_gateway (422, nobody serves it), gateways_busy (503, breakers open or rate limits spent), idempotency_conflict (422), overloaded (503, the orchestrator is behind: see the platform dashboard). Unit: requests per second.',
          unit: 'reqps',
          targets: [q(`sum by (reason) (rate(payments_rejected_total[${R}]))`, '{{reason}}')],
        },
      ],
    },
    {
      title: 'Latency',
      panels: [
        {
          title: 'End-to-end duration p50 / p95 / p99',
          description: 'Time from accepting a payment to its terminal status (all types and gateways), as quantiles of payment_duration_seconds. Unit: seconds.',
          unit: 's',
          targets: quantiles('payment_duration_seconds', ''),
        },
        {
          title: 'End-to-end duration p95 by type',
          description: '95th percentile of accept-to-terminal time, by payment type. Unit: seconds.',
          unit: 's',
          targets: [q(`histogram_quantile(0.95, sum by (type, le) (rate(payment_duration_seconds_bucket[${R}])))`, '{{type}}')],
        },
        {
          title: 'End-to-end duration p95 by settling gateway',
          description: '95th percentile of accept-to-terminal time, by the gateway whose answer ended the payment. Unit: seconds.',
          unit: 's',
          targets: [q(`histogram_quantile(0.95, sum by (gateway, le) (rate(payment_duration_seconds_bucket[${R}])))`, '{{gateway}}')],
        },
      ],
    },
    {
      title: 'Failovers, timeouts and exceptions',
      panels: [
        {
          title: 'Failovers by cause',
          description: 'Attempts that ended retryably and sent the payment to another gateway, per second, by cause (failure, timeout, cancel-confirmed). Unit: failovers per second.',
          unit: 'ops',
          targets: [q(`sum by (cause) (rate(payment_failovers_total[${R}]))`, '{{cause}}')],
        },
        {
          title: 'Attempt timeouts by gateway',
          description: 'Attempts whose deadline passed without an answer, per second, by gateway. Unit: timeouts per second.',
          unit: 'ops',
          targets: [q(`sum by (gateway) (rate(payment_attempt_outcomes_total{outcome="timeout"}[${R}]))`, '{{gateway}}')],
        },
        {
          title: 'Late successes and compensations',
          description: 'Successes that arrived after their attempt timed out, per second: settled (won a still-pending payment) or compensated (the payment had ended; a void/refund was sent). Unit: events per second.',
          unit: 'ops',
          targets: [
            q(`sum by (result) (rate(payment_late_successes_total[${R}]))`, 'late success: {{result}}'),
            q(`sum(rate(payment_compensations_total[${R}]))`, 'compensation commands sent'),
          ],
        },
        {
          title: 'Payments in flight and pending review',
          description: 'Payments waiting for a gateway (attempts with an open deadline) and withdrawals waiting for a person (flagged for review), read from the shared Redis state. Unit: payments.',
          unit: 'short',
          targets: [q('max(payments_in_flight)', 'in flight'), q('max(payments_pending_review)', 'pending review')],
        },
        {
          title: 'Withdrawals flagged for review (last hour)',
          description: 'Withdrawals left PENDING for a person in the last hour because a timed-out gateway never confirmed the cancel. Unit: payments.',
          unit: 'short',
          kind: 'stat',
          targets: [q('sum(increase(payments_flagged_for_review_total[1h]))', 'flagged')],
        },
        {
          title: 'Review resolutions by decision (last 24 h)',
          description:
            'Operators\' decisions on payments in review applied by the orchestrators in the last 24 hours, by decision (paid, not-paid, refunded) and result (applied; duplicate: the same resolution again; refused: the payment was not in review for it any more). Unit: resolutions.',
          unit: 'short',
          targets: [q('sum by (decision, result) (increase(payment_review_resolutions_total[24h]))', '{{decision}} {{result}}')],
        },
        {
          title: 'Outbox backlog and send failures',
          description: 'Payments whose decided Kafka messages are not confirmed sent yet (backlog, payments), and failed first sends per second (failures). Both rise while Kafka refuses messages. Unit: count.',
          unit: 'short',
          targets: [q('max(outbox_pending_payments)', 'backlog (payments)'), q(`sum(rate(outbox_send_failures_total[${R}]))`, 'send failures per second')],
        },
      ],
    },
  ],
};

const g = 'gateway=~"$gateway"';
const gateways: DashboardSpec = {
  uid: 'pgo-gateways',
  title: 'Gateways',
  description:
    'One row per gateway: availability, breaker, effective weight, outcomes, success rate, latency, rate-limit skips, ejections and the health window behind the weight; then answers, dispatches and unreadable results of every gateway.',
  file: 'gateways.json',
  variables: [{ name: 'gateway', label: 'Gateway', query: 'label_values(gateway_available, gateway)' }],
  rows: [
    {
      title: 'Gateway $gateway',
      repeat: 'gateway',
      panels: [
        {
          title: 'Availability',
          description: 'Whether the back office rules have the gateway enabled and available (1) or marked unavailable / disabled (0); the lowest value over the orchestrator instances. Unit: state.',
          unit: 'short',
          kind: 'stat',
          width: 4,
          mappings: [
            { value: 1, text: 'available', color: 'green' },
            { value: 0, text: 'unavailable', color: 'red' },
          ],
          targets: [q(`min(gateway_available{${g}})`, 'available')],
        },
        {
          title: 'Circuit breaker',
          description: 'The breaker state, the worst over the orchestrator instances: closed (0), half-open (1, one trial payment let through), open (2, no new payments). Unit: state.',
          unit: 'short',
          kind: 'stat',
          width: 4,
          mappings: [
            { value: 0, text: 'closed', color: 'green' },
            { value: 1, text: 'half-open', color: 'orange' },
            { value: 2, text: 'open', color: 'red' },
          ],
          targets: [q(`max(gateway_breaker_state{${g}})`, 'breaker')],
        },
        {
          title: 'Effective weight',
          description: 'The weight selection uses now, per orchestrator instance: the rule weight scaled down by the recent success rate and latency (0 when unavailable). Unit: weight.',
          unit: 'short',
          width: 8,
          min: 0,
          targets: [q(`gateway_effective_weight{${g}}`, '{{instance}}')],
        },
        {
          title: 'Rate-limit skips',
          description: 'Selections that skipped this gateway because its shared rate limit was spent (its rule allows N attempts in any rolling second, over every orchestrator instance), per second. Unit: skips per second.',
          unit: 'ops',
          width: 8,
          targets: [q(`sum(rate(gateway_rate_limited_total{${g}}[${R}]))`, 'skipped')],
        },
        {
          title: 'Attempt outcomes',
          description: 'Outcomes the orchestrators applied for this gateway, per second: success, retryable (technical failure), final (business decline), timeout. Unit: attempts per second.',
          unit: 'ops',
          stacked: true,
          targets: [q(`sum by (outcome) (rate(payment_attempt_outcomes_total{${g}}[${R}]))`, '{{outcome}}')],
        },
        {
          title: 'Success rate',
          description: 'Approved: successes over all outcomes. Technical: successes over outcomes that were not business declines (what GatewaySuccessRateLow watches). Unit: percent.',
          unit: 'percentunit',
          min: 0,
          max: 1,
          targets: [
            q(`sum(rate(payment_attempt_outcomes_total{${g},outcome="success"}[${R}])) / sum(rate(payment_attempt_outcomes_total{${g}}[${R}]))`, 'approved'),
            q(
              `sum(rate(payment_attempt_outcomes_total{${g},outcome="success"}[${R}])) / sum(rate(payment_attempt_outcomes_total{${g},outcome=~"success|retryable|timeout"}[${R}]))`,
              'technical',
            ),
          ],
        },
        {
          title: 'Result latency p50 / p95 / p99',
          description: 'The gateway\'s time for its answers, from when the request reached Kafka (or the dispatch decision, when the answer does not say) to when the answer reached Kafka, as quantiles of gateway_result_latency_seconds. Unit: seconds.',
          unit: 's',
          targets: quantiles('gateway_result_latency_seconds', '', `{${g}}`),
        },
        {
          title: 'Ejections by reason (last 15 minutes)',
          description:
            "Times the orchestrators ejected this gateway (opened its breaker) in the last 15 minutes, by reason: consecutive-failures (technical failures in a row), failure-rate (the breaker's window), trial-failed (a half-open trial failed: ejected again, for longer). What GatewayBreakerOpen pages for. Unit: ejections.",
          unit: 'short',
          targets: [q(`sum by (reason) (increase(gateway_health_transitions_total{${g},state="open"}[15m]))`, '{{reason}}')],
        },
        {
          title: 'Suppressed ejections (last 15 minutes)',
          description:
            "Ejections by consecutive failures refused in the last 15 minutes because the gateway's region already had as many gateways out as OUTLIER_MAX_EJECTION_PERCENT allows (or would have none left): the gateway stayed in, weighted down. What GatewayEjectionSuppressed pages for. Unit: ejections.",
          unit: 'short',
          targets: [q(`sum(increase(gateway_ejections_suppressed_total{${g}}[15m]))`, 'suppressed')],
        },
        {
          title: 'Consecutive failures',
          description:
            'Technical failures (timeouts, retryable errors) in a row of this gateway while closed, per orchestrator instance; it is ejected when this reaches OUTLIER_CONSECUTIVE_FAILURES (3), and a success or a decline resets it. Unit: failures.',
          unit: 'short',
          min: 0,
          targets: [q(`gateway_consecutive_failures{${g}}`, '{{instance}}')],
        },
        {
          title: 'Health window success rate',
          description:
            "Technical success share of this gateway's last HEALTH_WINDOW_OUTCOMES (20) outcomes (answers and timeouts, a count and not a time window), per orchestrator instance: the success part of the effective weight, which falls from 1 at 95 % to 0 at 50 %. Unit: percent.",
          unit: 'percentunit',
          width: 12,
          min: 0,
          max: 1,
          targets: [q(`gateway_window_success_ratio{${g}}`, '{{instance}}')],
        },
        {
          title: 'Health window mean latency',
          description:
            "Mean gateway latency (from the request reaching Kafka to the answer's broker time) of this gateway's answers among its last HEALTH_WINDOW_OUTCOMES outcomes, per orchestrator instance: the latency part of the effective weight, which falls from 1 at a quarter of the attempt timeout to 0 at three quarters. Unit: seconds.",
          unit: 's',
          width: 12,
          min: 0,
          targets: [q(`gateway_window_latency_seconds{${g}}`, '{{instance}}')],
        },
      ],
    },
    {
      title: 'All gateways',
      panels: [
        {
          title: 'Answers given by the gateway workers',
          description: "The gateway processes' own count of answers, per second, by gateway, outcome and reason (a failure code, or why there was no answer: hang, cancelled, abandoned). Unit: answers per second.",
          unit: 'ops',
          targets: [q(`sum by (gateway, outcome, reason) (rate(gateway_attempts_answered_total{${g}}[${R}]))`, '{{gateway}} {{outcome}} {{reason}}')],
        },
        {
          title: 'Attempts dispatched',
          description: 'Attempts sent to each gateway per second, first attempts and failovers. Unit: attempts per second.',
          unit: 'ops',
          targets: [q(`sum by (gateway, attempt) (rate(payment_attempts_dispatched_total{${g}}[${R}]))`, '{{gateway}} {{attempt}}')],
        },
        {
          title: 'Unreadable results (last hour)',
          description: "Results that named a known attempt but whose outcome could not be read, in the last hour, by gateway: each was dead-lettered as unreadable-result and the gateway asked to cancel; the payment waits for the cancel's answer or a person (what GatewayResultsUnreadable pages for). Unit: results.",
          unit: 'short',
          targets: [q(`sum by (gateway) (increase(gateway_results_unreadable_total{${g}}[1h]))`, '{{gateway}}')],
        },
      ],
    },
  ],
};

const platform: DashboardSpec = {
  uid: 'pgo-platform',
  title: 'Kafka, Redis and services',
  description: "Consumer lag, dead letters, Kafka traffic, the orchestrator's own backlog (admission, held deadlines, results read lag), Redis command latency, HTTP and process metrics of every service, and the alerts sent.",
  file: 'platform.json',
  rows: [
    {
      title: 'Kafka',
      panels: [
        {
          title: 'Consumer lag by group',
          description: 'Messages not yet consumed (log end minus committed offset), summed over the partitions of each consumer group. Growing lag is what KafkaConsumerLagGrowing watches. Unit: messages.',
          unit: 'short',
          targets: [q('sum by (group) (max by (group, topic, partition) (kafka_consumer_lag))', '{{group}}')],
        },
        {
          title: 'Consumer lag by partition',
          description: 'The same lag per group, topic and partition: one hot partition means one payment key (or one stuck handler). Unit: messages.',
          unit: 'short',
          targets: [q('max by (group, topic, partition) (kafka_consumer_lag)', '{{group}} {{topic}}[{{partition}}]')],
        },
        {
          title: 'Dead letters by topic and reason',
          description: 'Messages parked on the dead-letter topic, per second, by source topic and reason (not-json, schema, unknown-payment, bad-signature…). Unit: messages per second.',
          unit: 'ops',
          targets: [q(`sum by (topic, reason) (rate(kafka_messages_dead_lettered_total[${R}]))`, '{{topic}} {{reason}}')],
        },
        {
          title: 'Dead letters (last hour)',
          description: 'Messages dead-lettered by every service in the last hour. Unit: messages.',
          unit: 'short',
          kind: 'stat',
          targets: [q('sum(increase(kafka_messages_dead_lettered_total[1h]))', 'dead letters')],
        },
        {
          title: 'Messages consumed by service',
          description: 'Messages taken from Kafka per second, by service. Unit: messages per second.',
          unit: 'ops',
          targets: [q(`sum by (service) (rate(kafka_messages_consumed_total[${R}]))`, '{{service}}')],
        },
        {
          title: 'Messages produced by topic',
          description: 'Messages published to Kafka per second, by topic. Unit: messages per second.',
          unit: 'ops',
          targets: [q(`sum by (topic) (rate(kafka_messages_produced_total[${R}]))`, '{{topic}}')],
        },
      ],
    },
    {
      title: 'Orchestrator backlog and admission',
      panels: [
        {
          title: 'Payments refused as overloaded',
          description: 'POST /v1/payments answered 503 overloaded at once (Retry-After set, nothing written), per second, by the signal that was over its bound: results-backlog or event-loop-delay. Sustained refusals are what OrchestratorOverloaded watches. Unit: requests per second.',
          unit: 'reqps',
          targets: [q(`sum by (signal) (rate(payments_refused_overloaded_total[${R}]))`, '{{signal}}')],
        },
        {
          title: 'Admission signals by instance',
          description: 'Each orchestrator instance\'s admission signals: results-backlog (how long results may have waited unread on the results partitions it reads; 0 when read to their end) and event-loop-delay (p99 over the last sample). New payments get 503 overloaded above ADMISSION_MAX_RESULTS_BACKLOG_MS (2 s) and ADMISSION_MAX_EVENT_LOOP_DELAY_MS (0.5 s). Unit: seconds.',
          unit: 's',
          targets: [q('max by (signal, instance) (orchestrator_backlog_seconds)', '{{signal}} {{instance}}')],
        },
        {
          title: 'Deadlines held',
          description: 'Attempt deadlines passed on the clock but held because their results partition has not been read past them yet: the orchestrator\'s own lag, never counted against a gateway. A few for a fraction of a second is normal; a lasting count means payments wait for us (DeadlinesHeld). Shared state, the same on every instance. Unit: deadlines.',
          unit: 'short',
          min: 0,
          targets: [q('max(payment_deadlines_held)', 'held')],
        },
        {
          title: 'Results read lag by partition',
          description: 'Per gateway.results partition, now minus the time up to which every result on it has been applied (as of the last timeout sweep). Grows while nobody reads the partition (an instance dead before the rebalance, a stuck consumer), and its deadlines wait meanwhile; above 30 s for a minute is ResultsPartitionUnread. Unit: seconds.',
          unit: 's',
          width: 12,
          min: 0,
          targets: [q('max by (partition) (results_read_lag_seconds)', 'partition {{partition}}')],
        },
        {
          title: 'Deadlines extended or held for the send',
          description: "Attempt deadlines moved later because the attempt's request reached Kafka late (a broker outage, a crash before the send, a publish backlog), and deadlines that passed while the request was still unsent in the outbox (held until the relay sends it), per second: the gateway's time starts when it can see the request. Unit: deadlines per second.",
          unit: 'ops',
          width: 12,
          targets: [q(`sum(rate(payment_deadlines_extended_total[${R}]))`, 'extended'), q(`sum(rate(payment_deadlines_held_for_send_total[${R}]))`, 'held for the send')],
        },
        {
          title: 'Timeouts acted on: lateness p50 / p99',
          description: 'How long after an attempt deadline its timeout was acted on (payment_deadline_lateness_seconds): the wait for the results partition to be read past it, the sweep interval and our own queueing. A hung gateway fails over within its timeout plus this; at steady load it stays well under 1 s (docs/decisions/0015). Lasting seconds means the orchestrator is behind, not the gateway. Unit: seconds.',
          unit: 's',
          width: 24,
          min: 0,
          targets: [
            q(`histogram_quantile(0.5, sum by (le) (rate(payment_deadline_lateness_seconds_bucket[${R}])))`, 'p50'),
            q(`histogram_quantile(0.99, sum by (le) (rate(payment_deadline_lateness_seconds_bucket[${R}])))`, 'p99'),
          ],
        },
      ],
    },
    {
      title: 'Redis and HTTP',
      panels: [
        {
          title: 'Redis command latency p99',
          description: 'The slowest 1 % of Redis commands as the orchestrator waits for them (queueing during a reconnect included), by command; Lua scripts show as evalsha. Unit: seconds.',
          unit: 's',
          targets: [q(`histogram_quantile(0.99, sum by (command, le) (rate(redis_command_duration_seconds_bucket[${R}])))`, '{{command}}')],
        },
        {
          title: 'HTTP requests by route and status',
          description: 'Requests answered per second, by service, route pattern and status code. Unit: requests per second.',
          unit: 'reqps',
          targets: [q(`sum by (service, route, status) (rate(http_requests_total[${R}]))`, '{{service}} {{route}} {{status}}')],
        },
        {
          title: 'HTTP duration p95 by route',
          description: '95th percentile of the time to answer, by service and route pattern. Unit: seconds.',
          unit: 's',
          targets: [q(`histogram_quantile(0.95, sum by (service, route, le) (rate(http_request_duration_seconds_bucket[${R}])))`, '{{service}} {{route}}')],
        },
      ],
    },
    {
      title: 'Services',
      panels: [
        {
          title: 'Targets up',
          description: 'Whether Prometheus could scrape each service instance at its last try (1 up, 0 down: the ServiceDown alert). Unit: state.',
          unit: 'short',
          min: 0,
          max: 1,
          targets: [q('up', '{{service}} {{instance}}')],
        },
        {
          title: 'CPU used by service',
          description: 'CPU time used per second of wall time, per service instance (1 = one full core). Unit: cores.',
          unit: 'short',
          targets: [q(`sum by (service, instance) (rate(process_cpu_seconds_total[${R}]))`, '{{service}} {{instance}}')],
        },
        {
          title: 'Resident memory by service',
          description: 'Resident memory of each service process. Unit: bytes.',
          unit: 'bytes',
          targets: [q('process_resident_memory_bytes', '{{service}} {{instance}}')],
        },
        {
          title: 'Alerts sent to people (last hour)',
          description: 'Alerts the alert receiver got from Alertmanager in the last hour, by alert name and status (firing, resolved). Unit: alerts.',
          unit: 'short',
          width: 12,
          targets: [q('sum by (alertname, status) (increase(alerts_received_total[1h]))', '{{alertname}} {{status}}')],
        },
        {
          title: 'Notifications forwarded',
          description: 'Notifications the alert receiver forwarded to its webhook in the last hour, by result (sent, failed, not-configured). Unit: notifications.',
          unit: 'short',
          width: 12,
          targets: [q('sum by (result) (increase(alert_notifications_forwarded_total[1h]))', '{{result}}')],
        },
      ],
    },
  ],
};

export const DASHBOARDS: readonly DashboardSpec[] = [payments, gateways, platform];

function panelJson(spec: PanelSpec, id: number, gridPos: { x: number; y: number; w: number; h: number }) {
  const kind = spec.kind ?? 'timeseries';
  const steps = spec.mappings
    ? [{ color: 'green', value: null }]
    : [
        { color: 'green', value: null },
        { color: 'red', value: 80 },
      ];
  return {
    id,
    type: kind,
    title: spec.title,
    description: spec.description,
    datasource: DATASOURCE,
    gridPos,
    fieldConfig: {
      defaults: {
        unit: spec.unit,
        ...(spec.min === undefined ? {} : { min: spec.min }),
        ...(spec.max === undefined ? {} : { max: spec.max }),
        color: { mode: spec.mappings ? 'thresholds' : 'palette-classic' },
        thresholds: { mode: 'absolute', steps },
        mappings: (spec.mappings ?? []).map((mapping, index) => ({
          type: 'value',
          options: { [String(mapping.value)]: { text: mapping.text, color: mapping.color, index } },
        })),
        ...(kind === 'timeseries'
          ? {
              custom: {
                drawStyle: 'line',
                lineWidth: 1,
                fillOpacity: spec.stacked ? 30 : 10,
                showPoints: 'never',
                spanNulls: true,
                stacking: { mode: spec.stacked ? 'normal' : 'none', group: 'A' },
              },
            }
          : {}),
      },
      overrides: [],
    },
    options:
      kind === 'stat'
        ? { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'background', graphMode: 'none', textMode: 'auto', justifyMode: 'auto', orientation: 'auto' }
        : { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } },
    targets: spec.targets.map((target, index) => ({
      datasource: DATASOURCE,
      expr: target.expr,
      legendFormat: target.legend,
      range: true,
      refId: String.fromCharCode(65 + index),
    })),
  };
}

/** The dashboard as Grafana stores it: rows in order, panels laid out left to right, 24 columns wide. */
export function dashboardJson(spec: DashboardSpec) {
  const panels: unknown[] = [];
  let id = 1;
  let y = 0;
  for (const row of spec.rows) {
    panels.push({ id: id++, type: 'row', title: row.title, collapsed: false, gridPos: { x: 0, y, w: 24, h: 1 }, panels: [], ...(row.repeat ? { repeat: row.repeat } : {}) });
    y += 1;
    let x = 0;
    for (const panel of row.panels) {
      const w = panel.width ?? 8;
      if (x + w > 24) {
        x = 0;
        y += PANEL_HEIGHT;
      }
      panels.push(panelJson(panel, id++, { x, y, w, h: PANEL_HEIGHT }));
      x += w;
    }
    y += PANEL_HEIGHT;
  }
  return {
    uid: spec.uid,
    title: spec.title,
    description: spec.description,
    tags: ['payment-gateway-orchestrator'],
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    refresh: '30s',
    time: { from: 'now-1h', to: 'now' },
    timezone: 'browser',
    annotations: { list: [] },
    links: DASHBOARDS.filter((other) => other.uid !== spec.uid).map((other) => ({
      title: other.title,
      type: 'link',
      url: `/d/${other.uid}`,
      icon: 'dashboard',
    })),
    templating: {
      list: (spec.variables ?? []).map((variable) => ({
        name: variable.name,
        label: variable.label,
        type: 'query',
        datasource: DATASOURCE,
        definition: variable.query,
        query: { query: variable.query, refId: variable.name },
        refresh: 2,
        multi: true,
        includeAll: true,
        allValue: '.+',
        current: { selected: true, text: ['All'], value: ['$__all'] },
        sort: 1,
      })),
    },
    panels,
  };
}

/** The file contents `npm run dashboards` writes, by file name. */
export function renderDashboards(): Map<string, string> {
  return new Map(DASHBOARDS.map((spec) => [spec.file, `${JSON.stringify(dashboardJson(spec), null, 2)}\n`]));
}

if (require.main === module) {
  for (const [file, text] of renderDashboards()) {
    writeFileSync(path.join(__dirname, file), text);
    process.stdout.write(`wrote grafana/dashboards/${file}\n`);
  }
}
