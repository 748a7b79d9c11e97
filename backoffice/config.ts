import { hostname } from 'node:os';
import { z } from 'zod';
import { authEnv, refuseDevelopmentKeyInProduction } from '../runtime/auth';
import { commonEnv, parseConfig, port, positiveInt } from '../runtime/config';
import { signingEnv } from '../runtime/signing';

const backofficeEnv = z.object({
  ...commonEnv,
  ...authEnv,
  ...signingEnv,
  PORT: port(8081),
  INSTANCE_ID: z.string().min(1).default(`${hostname()}-${process.pid}`),
  SHUTDOWN_GRACE_MS: positiveInt(15_000),
  /** How long a write waits to read its own rule event back from the topic before answering 504. */
  WRITE_APPLY_TIMEOUT_MS: positiveInt(10_000),
  /** An orchestrator's outcome report older than this is from an instance that stopped, and leaves the success rates. */
  GATEWAY_STATS_STALE_MS: positiveInt(30_000),
  /** The orchestrators' HTTP API (any instance, or the service in front of them): the reviews are read there. */
  ORCHESTRATOR_URL: z.url().default('http://127.0.0.1:8080'),
  /** How long a review resolution waits for an orchestrator to apply it before answering 202. */
  REVIEW_APPLY_TIMEOUT_MS: positiveInt(10_000),
  /** How long a write has to get its messages acknowledged before the outbox relay sends them instead. */
  OUTBOX_GRACE_MS: positiveInt(5_000),
  /** How often the outbox relay looks for messages left behind. */
  OUTBOX_POLL_MS: positiveInt(1_000),
  /** How often the rule topic is compared with the audit trail (also once at start): a rule missing or rolled back there raises backoffice_rules_diverged. */
  RULES_RECONCILE_MS: positiveInt(60_000),
});

export type BackofficeConfig = z.infer<typeof backofficeEnv>;

/** Every variable this service reads. */
export const backofficeEnvKeys = Object.keys(backofficeEnv.shape);

export const loadBackofficeConfig = (env: Record<string, string | undefined>): BackofficeConfig =>
  parseConfig(backofficeEnv.superRefine(refuseDevelopmentKeyInProduction), env);
