import { hostname } from 'node:os';
import { z } from 'zod';
import { authEnv, refuseDevelopmentKeyInProduction } from '../runtime/auth';
import { commonEnv, parseConfig, port, positiveInt } from '../runtime/config';
import { healthSigningEnv, refuseDevelopmentHealthKeyInProduction, signingEnv } from '../runtime/signing';

const orchestratorEnv = z.object({
  ...commonEnv,
  ...authEnv,
  ...signingEnv,
  ...healthSigningEnv,
  /**
   * How long a breaker state published on the health topic steers other instances, in ms: after it, the state
   * is history and changes no breaker (a new instance does not start from it). A state still in force is
   * published again when it changes; an open breaker turns half-open on its own timer anyway.
   */
  HEALTH_STATE_TTL_MS: positiveInt(30_000),
  /** Longest `Prefer: wait=N` honoured, in seconds. */
  PREFER_WAIT_MAX_SECONDS: positiveInt(30),
  PORT: port(8080),
  INSTANCE_ID: z.string().min(1).default(`${hostname()}-${process.pid}`),
  MAX_ATTEMPTS: positiveInt(3),
  /** Compensate (void/refund) commands sent for one late success before the payment is flagged for review. */
  COMPENSATION_MAX_TRIES: positiveInt(5),
  /** How long an Idempotency-Key keeps answering with its payment. */
  IDEMPOTENCY_TTL_SECONDS: positiveInt(24 * 60 * 60),
  /** How often each instance looks for expired attempt deadlines (and publishes how far it has read the results). */
  TIMEOUT_POLL_MS: positiveInt(100),
  /**
   * Taken off "results partition read to its end at time t", in ms: the broker's clock may run ahead of ours and
   * a just-appended result may not be readable yet. Delays a timeout on an idle partition by this much.
   */
  RESULTS_READ_ALLOWANCE_MS: positiveInt(250),
  /**
   * While no attempt deadline is due, how often (ms) an instance asks Kafka for the results' log ends (three admin
   * requests): for the admission backlog and to notice a disruption. A sweep with a deadline due always asks.
   */
  RESULTS_LOG_END_LOOK_MS: positiveInt(500),
  /**
   * After Kafka is disrupted (a broker lost, results leaders or in-sync replicas moving, brokers not answering),
   * deadlines after the last healthy moment also wait this long past the last sign of it, in ms: a gateway worker
   * reconnects and rejoins its consumer group before it sees its requests again (11 s after a 10 s broker outage,
   * test/chaos/broker-outage), and retries its answer's send.
   */
  RESULTS_DISRUPTION_SETTLE_MS: positiveInt(20_000),
  /** New payments get 503 overloaded while results on this instance's partitions may have waited unread longer, in ms. */
  ADMISSION_MAX_RESULTS_BACKLOG_MS: positiveInt(2_000),
  /** New payments get 503 overloaded while the event loop's p99 delay is above this, in ms. */
  ADMISSION_MAX_EVENT_LOOP_DELAY_MS: positiveInt(500),
  /** The event-loop delay sample window, in ms. */
  ADMISSION_SAMPLE_MS: positiveInt(500),
  SHUTDOWN_GRACE_MS: positiveInt(15_000),
  /** How long a state change's messages may wait for their first send before the outbox relay sends them. */
  OUTBOX_GRACE_MS: positiveInt(2_000),
  OUTBOX_POLL_MS: positiveInt(250),
  /** Failure share (percent of outcomes in the window) that opens a gateway's breaker. */
  BREAKER_ERROR_THRESHOLD_PERCENT: z.coerce.number().min(1).max(100).default(50),
  /** Outcomes needed in the window before a breaker may open. */
  BREAKER_VOLUME_THRESHOLD: positiveInt(5),
  BREAKER_WINDOW_MS: positiveInt(10_000),
  /** How long a breaker stays open before a half-open trial: the first ejection's length, in ms (the n-th lasts n times this). */
  BREAKER_RESET_TIMEOUT_MS: positiveInt(5_000),
  /** Technical failures (timeouts, retryable errors) in a row that eject a gateway, at any traffic rate; 0 turns it off. */
  OUTLIER_CONSECUTIVE_FAILURES: z.coerce.number().int().min(0).max(1_000).default(3),
  /** The longest ejection, in ms: ejections in a row grow by BREAKER_RESET_TIMEOUT_MS each up to this. */
  OUTLIER_MAX_EJECTION_MS: positiveInt(60_000),
  /** Percent of a region's enabled, available gateways consecutive failures may eject at once (never all of them). */
  OUTLIER_MAX_EJECTION_PERCENT: z.coerce.number().min(0).max(100).default(50),
  /** Outcomes (answers and timeouts) per gateway the health weights are computed over: a count, not a time window. */
  HEALTH_WINDOW_OUTCOMES: positiveInt(20),
  /** The lowest health factor on a rule weight (0–1), so a degraded gateway keeps a trickle to prove it healed. */
  HEALTH_WEIGHT_FLOOR: z.coerce.number().min(0).max(1).default(0.1),
  /** The window of the per-gateway outcome counts reported to the back office (its "recent success rate"). */
  GATEWAY_STATS_WINDOW_MS: positiveInt(5 * 60_000),
  /** How often each instance reports those counts. */
  GATEWAY_STATS_REPORT_MS: positiveInt(5_000),
});

export type OrchestratorConfig = z.infer<typeof orchestratorEnv>;

/** Every variable this service reads (docker-compose.yml is checked against it). */
export const orchestratorEnvKeys = Object.keys(orchestratorEnv.shape);

export const loadOrchestratorConfig = (env: Record<string, string | undefined>): OrchestratorConfig =>
  parseConfig(
    orchestratorEnv.superRefine(refuseDevelopmentKeyInProduction).superRefine(refuseDevelopmentHealthKeyInProduction),
    env,
  );
